// The idle-GPU reaper's memory between its scheduled runs: since when each managed pool has
// been idle, in a ConfigMap (one read and at most one write per reaper run).
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { createOrAdopt, hasStatus } from './api-errors.js';
import { managedBy } from './labels.js';

const configMapName = 'aks-finetune-idle-gpu-pools';

/** Pool name -> ISO time since which it has been idle. */
export type IdleSince = Record<string, string>;

export function createReaperStateActivities({ kubeConfig, namespace }: { kubeConfig: KubeConfig; namespace: string }) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return {
    async readIdleSince(): Promise<IdleSince> {
      try {
        const map = await core.readNamespacedConfigMap({ name: configMapName, namespace });
        return { ...(map.data ?? {}) };
      } catch (err) {
        if (hasStatus(err, 404)) return {};
        throw err;
      }
    },

    async writeIdleSince(idleSince: IdleSince): Promise<void> {
      const body = { metadata: { name: configMapName, labels: { ...managedBy } }, data: idleSince };
      await createOrAdopt(
        () => core.createNamespace({ body: { metadata: { name: namespace } } }),
        () => core.readNamespace({ name: namespace }),
      );
      await createOrAdopt(
        () => core.createNamespacedConfigMap({ namespace, body }),
        () => core.replaceNamespacedConfigMap({ name: configMapName, namespace, body }),
      );
    },
  };
}
