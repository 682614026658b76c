// The product's own small state between runs, in ConfigMaps named aks-finetune-<name>: since
// when each pool has been idle (the reaper), the dataset a schedule last trained on (retrain).
// One read and at most one write per workflow run.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { createOrAdopt, ensureNamespaceExists, hasStatus } from './api-errors.js';
import { managedBy } from './labels.js';

export type StateMap = Record<string, string>;

export function createProductStateActivities({ kubeConfig, namespace }: { kubeConfig: KubeConfig; namespace: string }) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const configMapName = (name: string) => `aks-finetune-${name}`;
  return {
    async readState(name: string): Promise<StateMap> {
      try {
        const map = await core.readNamespacedConfigMap({ name: configMapName(name), namespace });
        return { ...(map.data ?? {}) };
      } catch (err) {
        if (hasStatus(err, 404)) return {};
        throw err;
      }
    },

    async writeState(name: string, data: StateMap): Promise<void> {
      const body = { metadata: { name: configMapName(name), labels: { ...managedBy } }, data };
      await ensureNamespaceExists(core, namespace);
      await createOrAdopt(
        () => core.createNamespacedConfigMap({ namespace, body }),
        () => core.replaceNamespacedConfigMap({ name: configMapName(name), namespace, body }),
      );
    },
  };
}
