// SIMULATION: a container's stdout, and kwok serving it as the container's log. kwok runs no
// containers: the log is written as a CRI log file (what a kubelet reads for pods/log), one
// line at a time as the simulated container prints it, and named in a kwok `Logs` object, owned
// by the pod, so the API server's pods/log reaches it through kwok's kubelet API (which reads
// the file on each request, with the kubelet's own tail, since and byte-limit handling).
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';

/** Appends lines to a container's log, each stamped with the time it is printed. */
export type ContainerLog = (lines: string[]) => void;

const criLines = (lines: string[]) => {
  const now = new Date().toISOString();
  return lines.map((line) => `${now} stdout F ${line}\n`).join('');
};

/** Starts `container`'s CRI log file under `dir` with `first`, points kwok's Logs object for the pod at it, and returns what appends to it. */
export async function publishContainerLog(kubeConfig: KubeConfig, pod: V1Pod, container: string, first: string, dir: string): Promise<ContainerLog> {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${container}.log`);
  writeFileSync(file, criLines([first]));
  const append: ContainerLog = (lines) => appendFileSync(file, criLines(lines));
  const { name, namespace, uid } = pod.metadata!;
  const body = {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'Logs',
    metadata: { name, namespace, ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name, uid }] },
    spec: { logs: [{ containers: [container], logsFile: file, follow: false }] },
  };
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  await custom.createNamespacedCustomObject({ group: 'kwok.x-k8s.io', version: 'v1alpha1', namespace: namespace!, plural: 'logs', body }).catch((err: { code?: number }) => {
    if (err.code !== 409) throw err;
  });
  // A kubelet serves a container's log as soon as it is written; kwok serves it once its informer
  // has the Logs object. Wait for that, so a reader that looks right after the pod ends finds it.
  const core = kubeConfig.makeApiClient(CoreV1Api);
  for (let attempt = 0; attempt < 100; attempt++) {
    const served = await core.readNamespacedPodLog({ name: name!, namespace: namespace!, container, tailLines: 1 }).catch(() => '');
    if (served) return append;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`kwok does not serve the log of ${namespace}/${name}/${container}`);
}
