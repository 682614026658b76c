// A push Secret's .dockerconfigjson: the login it holds for a registry, as docker and oras read it.
import { describe, expect, it } from 'vitest';
import { registryHost, registryLogin } from '../domain/docker-config.js';
import { parseChallenge } from '../activities/registry/registry-login.js';

const config = (auths: Record<string, object>) => JSON.stringify({ auths });

describe('a docker-config Secret', () => {
  it('gives the login for a registry from username and password, from auth, or an ACR identity token', () => {
    expect(registryLogin(config({ 'myacr.azurecr.io': { username: 'u', password: 'p' } }), 'myacr.azurecr.io')).toEqual({ login: { kind: 'password', username: 'u', password: 'p' } });
    expect(registryLogin(config({ 'https://myacr.azurecr.io/v1/': { auth: Buffer.from('u:p:with:colons').toString('base64') } }), 'MyAcr.azurecr.io')).toEqual({
      login: { kind: 'password', username: 'u', password: 'p:with:colons' },
    });
    expect(registryLogin(config({ 'myacr.azurecr.io': { username: '00000000-0000-0000-0000-000000000000', identitytoken: 'refresh' } }), 'myacr.azurecr.io')).toEqual({
      login: { kind: 'refresh-token', refreshToken: 'refresh' },
    });
  });

  it('says what is missing without showing a secret value', () => {
    expect(registryLogin(config({ 'other.azurecr.io': { auth: 'c2VjcmV0OnZhbHVl' } }), 'myacr.azurecr.io')).toEqual({ problem: 'it holds no login for myacr.azurecr.io (it has other.azurecr.io)' });
    expect(registryLogin('{"auths": {"myacr.azurecr.io": {"auth": "bm9jb2xvbg=="}}}', 'myacr.azurecr.io')).toEqual({ problem: 'its login for myacr.azurecr.io has an "auth" that is not base64 of user:password' });
    expect(registryLogin('not json', 'r')).toEqual({ problem: 'its .dockerconfigjson is not JSON' });
    expect(registryLogin('{}', 'r')).toEqual({ problem: 'its .dockerconfigjson has no "auths"' });
    expect(registryHost('https://127.0.0.1:5000/v2/')).toBe('127.0.0.1:5000');
  });

  it("reads a registry's challenge, Basic (distribution's htpasswd) or Bearer (ACR's token endpoint)", () => {
    expect(parseChallenge('Basic realm="aks-finetune-test"')).toEqual({ scheme: 'basic', params: { realm: 'aks-finetune-test' } });
    expect(parseChallenge('Bearer realm="https://myacr.azurecr.io/oauth2/token",service="myacr.azurecr.io",scope="repository:a:pull,push"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://myacr.azurecr.io/oauth2/token', service: 'myacr.azurecr.io', scope: 'repository:a:pull,push' },
    });
    expect(parseChallenge(undefined)).toBeUndefined();
  });
});
