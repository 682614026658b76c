// A run's push Secret (request output.pushSecret, KAITO's tuning.output.imagePushSecret): a
// docker-config Secret in the run's namespace. Checked before anything is created, so a missing
// or wrong Secret fails in seconds rather than after the GPU hours of training; then used to read
// the pushed image back. Only these activities read the Secret: its values stay in this process,
// never in a result, a log line or an error.
import type { TokenCredential } from '@azure/core-auth';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { registryLogin, type RegistryLogin } from '../../domain/docker-config.js';
import { failureTypes } from '../../domain/failure-types.js';
import { createRegistryContentClient } from '../../workers/clients.js';
import { hasStatus } from '../kubernetes/api-errors.js';
import { type AdapterImage, readPushedAdapter } from './adapter-images.js';

/** Where a run's push Secret is. */
export interface PushSecretRef {
  namespace: string;
  name: string;
}

const dockerConfigType = 'kubernetes.io/dockerconfigjson';

export function createPushSecretActivities({ kubeConfig, credential }: { kubeConfig: KubeConfig; credential: TokenCredential }) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const invalid = (message: string) => ApplicationFailure.nonRetryable(message, failureTypes.invalidRequest);

  /** The Secret's login for `registry`, or a non-retryable error that says what is wrong with the Secret. */
  async function loginFor({ namespace, name }: PushSecretRef, registry: string): Promise<RegistryLogin> {
    const field = `output.pushSecret ${name}`;
    const secret = await core.readNamespacedSecret({ name, namespace }).catch((err: unknown) => {
      if (hasStatus(err, 404)) {
        throw invalid(
          `${field}: no such Secret in namespace ${namespace}; create it there: kubectl create secret docker-registry ${name} -n ${namespace} --docker-server=${registry} --docker-username=<user> --docker-password=<password>`,
        );
      }
      throw err;
    });
    const configJson = secret.data?.['.dockerconfigjson'];
    if (secret.type !== dockerConfigType || configJson === undefined) {
      throw invalid(`${field} in namespace ${namespace} is of type ${secret.type ?? '(none)'}; the pusher reads a ${dockerConfigType} Secret (key .dockerconfigjson), as kubectl create secret docker-registry makes`);
    }
    const found = registryLogin(Buffer.from(configJson, 'base64').toString('utf8'), registry);
    if ('problem' in found) throw invalid(`${field} in namespace ${namespace}: ${found.problem}`);
    return found.login;
  }

  const clientWith = (secret: PushSecretRef, login: RegistryLogin, registry: string, repository: string) =>
    createRegistryContentClient(`https://${registry}`, repository, credential, { login, source: `push Secret ${secret.name} in namespace ${secret.namespace}` });

  return {
    /**
     * Checks that the push Secret exists, is a docker-config Secret with a login for the output
     * registry, and that the registry accepts that login, before the run asks for GPUs.
     */
    async checkPushSecret(secret: PushSecretRef, registry: string, repository: string): Promise<void> {
      const login = await loginFor(secret, registry);
      // Any authenticated read answers whether the login is accepted; the tag need not exist.
      await clientWith(secret, login, registry, repository)
        .getManifest('aks-finetune-login-check')
        .catch((err: unknown) => {
          if ((err as { statusCode?: number }).statusCode === 404) return;
          if ([401, 403].includes((err as { statusCode?: number }).statusCode ?? 0)) throw invalid((err as Error).message);
          throw err;
        });
    },

    /** The pushed adapter image read back with the push Secret's login (readAdapterImage, for a registry the worker's identity may not reach). */
    async readAdapterImageWithSecret(secret: PushSecretRef, image: string): Promise<AdapterImage> {
      return readPushedAdapter(image, async (ref) => clientWith(secret, await loginFor(secret, ref.registry), ref.registry, ref.repository));
    },
  };
}
