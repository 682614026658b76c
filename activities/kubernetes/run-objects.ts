// The Kubernetes objects runs own, of every kind a run creates: found by their run labels, in
// one namespace (a run's own cleanup) or in all of them (the reaper's orphan sweep), and deleted
// exactly as listed (a UID precondition), so a newer object of the same name is never removed.
import { type KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import type { RecordedOwner, SweepKind } from '../../domain/run-identity.js';
import { deleteIfPresent, objectOwner } from './api-errors.js';
import { type ObjectOwner, runIdLabel, runSelector } from './labels.js';

const apiVersions: Record<SweepKind, string> = {
  Job: 'batch/v1',
  ConfigMap: 'v1',
  PersistentVolumeClaim: 'v1',
  Deployment: 'apps/v1',
  Service: 'v1',
};
/** Jobs first: their pods hold the claim and read the ConfigMap. */
const kinds = Object.keys(apiVersions) as SweepKind[];
const inferenceKinds: SweepKind[] = ['Deployment', 'Service'];

export interface RunObject {
  kind: SweepKind;
  namespace: string;
  name: string;
  uid: string;
  owner: RecordedOwner;
}

export function createRunObjectActivities({ kubeConfig }: { kubeConfig: KubeConfig }) {
  const objects = KubernetesObjectApi.makeApiClient(kubeConfig);

  async function list(kind: SweepKind, labelSelector: string, namespace?: string): Promise<RunObject[]> {
    const { items } = await objects.list<KubernetesObject>(apiVersions[kind], kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
    return items.map((o) => ({ kind, namespace: o.metadata?.namespace ?? '', name: o.metadata?.name ?? '', uid: o.metadata?.uid ?? '', owner: objectOwner(o) }));
  }

  /** Deletes the object if it is still the one listed (same UID); Jobs take their pods with them. */
  const remove = (o: RunObject): Promise<boolean> =>
    deleteIfPresent(() =>
      objects.delete(
        { apiVersion: apiVersions[o.kind], kind: o.kind, metadata: { name: o.name, namespace: o.namespace } },
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
        // In the body: options in a body replace the query's, and a Job's default orphans its pods.
        { preconditions: { uid: o.uid }, propagationPolicy: 'Background' },
      ),
    ).catch((err: unknown) => {
      if ((err as { code?: number }).code === 409) return false; // replaced by a newer object: not the one listed
      throw err;
    });

  return {
    /**
     * Deletes what one run created in the namespace, found by its run labels (so nothing is
     * missed even when the workflow's own record is incomplete, and nothing of another run,
     * an earlier run under the same workflow id included, is touched). Returns "Kind/name" of each.
     */
    async deleteRunObjects(namespace: string, owner: ObjectOwner, options: { includeInference: boolean }): Promise<string[]> {
      const deleted: string[] = [];
      for (const kind of kinds) {
        if (!options.includeInference && inferenceKinds.includes(kind)) continue;
        for (const o of await list(kind, runSelector(owner), namespace)) if (await remove(o)) deleted.push(`${kind}/${o.name}`);
      }
      return deleted;
    },

    /** Every object of every run, in all namespaces, with the owner its metadata names: for the orphan sweep. */
    async listRunObjects(): Promise<RunObject[]> {
      return (await Promise.all(kinds.map((kind) => list(kind, runIdLabel)))).flat();
    },

    /** Deletes one object the orphan sweep listed; false when it is gone or was replaced. */
    deleteRunObject: (o: RunObject): Promise<boolean> => remove(o),
  };
}
