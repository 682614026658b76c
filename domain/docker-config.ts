// A docker-config Secret's `.dockerconfigjson` (`kubectl create secret docker-registry`, an
// ACR token or admin user, `az acr login --expose-token`): the login it holds for one registry.
// KAITO's pusher reads the same Secret (projected as /root/.docker/config.json). Pure code.

/** How to log in to a registry: a user and password (ACR tokens and admin users), or an ACR refresh token. */
export type RegistryLogin = { kind: 'password'; username: string; password: string } | { kind: 'refresh-token'; refreshToken: string };

/** The login for `registry` (host[:port]), or why the config holds none; never the secret values in the reason. */
export function registryLogin(configJson: string, registry: string): { login: RegistryLogin } | { problem: string } {
  let config: unknown;
  try {
    config = JSON.parse(configJson);
  } catch {
    return { problem: 'its .dockerconfigjson is not JSON' };
  }
  const auths = (config as { auths?: unknown })?.auths;
  if (!auths || typeof auths !== 'object') return { problem: 'its .dockerconfigjson has no "auths"' };
  const hosts = Object.keys(auths);
  const key = hosts.find((k) => registryHost(k) === registry.toLowerCase());
  if (key === undefined) return { problem: `it holds no login for ${registry} (it has ${hosts.length ? hosts.map(registryHost).join(', ') : 'none'})` };
  const entry = (auths as Record<string, { username?: unknown; password?: unknown; auth?: unknown; identitytoken?: unknown }>)[key] ?? {};
  // An identity token is an ACR refresh token (`az acr login --expose-token`); the user is then the null GUID.
  if (typeof entry.identitytoken === 'string' && entry.identitytoken) return { login: { kind: 'refresh-token', refreshToken: entry.identitytoken } };
  if (typeof entry.username === 'string' && typeof entry.password === 'string' && entry.username) {
    return { login: { kind: 'password', username: entry.username, password: entry.password } };
  }
  if (typeof entry.auth === 'string') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { login: { kind: 'password', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) } };
    return { problem: `its login for ${registry} has an "auth" that is not base64 of user:password` };
  }
  return { problem: `its login for ${registry} has neither username and password, "auth" nor "identitytoken"` };
}

/** A docker config key as host[:port]: `https://myacr.azurecr.io/v1/` → `myacr.azurecr.io`. */
export function registryHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
}
