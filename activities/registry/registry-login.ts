// Logging in to a registry with a docker-config login, as docker and oras do: a Basic challenge
// is answered with the user and password; a Bearer challenge (ACR, and any registry with a token
// server) by asking its realm for a token, with Basic auth (ACR tokens and admin users; ACR's
// "Get From Login") or with an ACR refresh token (grant_type refresh_token; ACR's "Access Tokens -
// Get"). https://azure.github.io/acr/Token-BasicAuth.html describes both.
//
// It is a perRetry policy: core-client places those after the Sign phase, so it sees a 401 before
// the SDK's own ACR challenge policy (which would meet it with an Azure credential) and answers it.
import { createHttpHeaders, createPipelineRequest, type PipelinePolicy, type PipelineResponse, RestError } from '@azure/core-rest-pipeline';
import type { RegistryLogin } from '../../domain/docker-config.js';

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** `Bearer realm="https://r/oauth2/token",service="r",scope="repository:a:pull,push"` → its scheme and parameters. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  const match = header?.match(/^\s*(\w+)\s*(.*)$/);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const [, key, quoted, bare] of match[2]!.matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) params[key!.toLowerCase()] = quoted ?? bare ?? '';
  return { scheme: match[1]!.toLowerCase(), params };
}

/**
 * The policy for one login. `source` names where the login came from (e.g. `Secret acr-push in
 * namespace ft`), for errors; the login's values never appear in them.
 */
export function registryLoginPolicy(login: RegistryLogin, source: string): PipelinePolicy {
  const basic = login.kind === 'password' ? `Basic ${Buffer.from(`${login.username}:${login.password}`).toString('base64')}` : undefined;
  let authorization: string | undefined;
  // Without the response: the SDK's bearer policy would take a RestError carrying a 401 response for a challenge of its own.
  const refused = (response: PipelineResponse, what: string) =>
    new RestError(`the registry at ${new URL(response.request.url).host} refused the login in ${source} (${what}, HTTP ${response.status}): check that it holds a valid user and password or token for this registry, with push rights`, {
      statusCode: response.status,
    });

  return {
    name: 'registryLoginPolicy',
    async sendRequest(request, next) {
      if (authorization) request.headers.set('Authorization', authorization);
      const response = await next(request);
      if (response.status !== 401) return response;
      const challenge = parseChallenge(response.headers.get('www-authenticate'));
      if (challenge?.scheme === 'basic') {
        if (!basic) throw refused(response, 'the registry asks for a user and password, the login is a refresh token');
        authorization = basic;
      } else if (challenge?.scheme === 'bearer' && challenge.params.realm) {
        authorization = `Bearer ${await token(challenge.params, request.url, next)}`;
      } else {
        throw refused(response, `unknown challenge ${challenge?.scheme ?? '(none)'}`);
      }
      request.headers.set('Authorization', authorization);
      const retried = await next(request);
      if (retried.status === 401 || retried.status === 403) throw refused(retried, 'after logging in');
      return retried;
    },
  };

  /** An access token from the challenge's realm for its service and scope. */
  async function token(params: Record<string, string>, requestUrl: string, next: Parameters<PipelinePolicy['sendRequest']>[1]): Promise<string> {
    const query = new URLSearchParams();
    if (params.service) query.set('service', params.service);
    if (params.scope) query.set('scope', params.scope);
    const realm = new URL(params.realm!, requestUrl);
    const request =
      login.kind === 'password'
        ? createPipelineRequest({ url: `${realm.href}${realm.search ? '&' : '?'}${query}`, method: 'GET', headers: createHttpHeaders({ Authorization: basic! }) })
        : createPipelineRequest({
            url: realm.href,
            method: 'POST',
            headers: createHttpHeaders({ 'Content-Type': 'application/x-www-form-urlencoded' }),
            body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: login.refreshToken, ...Object.fromEntries(query) }).toString(),
          });
    const response = await next(request);
    if (response.status !== 200) throw refused(response, 'its token endpoint');
    const body = JSON.parse(response.bodyAsText ?? '{}') as { token?: string; access_token?: string };
    const value = body.access_token ?? body.token;
    if (!value) throw refused(response, 'its token endpoint answered without a token');
    return value;
  }
}
