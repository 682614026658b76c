// SIMULATION: the trainer container's stdout, and kwok serving it as the container's log.
// What KAITO's fine_tuning.py prints through transformers' ProgressCallback (trainer_callback.py,
// transformers 5: floats as f"{v:.4g}" text): a logs dict per logging step, one per evaluation
// on the held-out split ({'eval_loss': ...}, only when DatasetConfig.train_test_split < 1 and
// TrainingArguments.eval_strategy is set, as the real Trainer evaluates), the final
// {'train_loss': ...}, and the tqdm bar. The numbers are made up, deterministic per Job.
// kwok runs no containers: the log is written as a CRI log file (what a kubelet reads for
// pods/log) and named in a kwok `Logs` object, owned by the pod, so the API server's pods/log
// reaches it through kwok's kubelet API.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { fnv1a } from '../../../domain/hash.js';

export interface TrainingConfigSections {
  TrainingArguments?: { num_train_epochs?: number; eval_strategy?: string };
  DatasetConfig?: { train_test_split?: number };
}

const g4 = (v: number) => String(Number(v.toPrecision(4)));
const dict = (entries: Record<string, number>) => `{${Object.entries(entries).map(([k, v]) => `'${k}': '${g4(v)}'`).join(', ')}}`;

/** The simulated final eval_loss of a Job: `override`, else a value in [0.5, 1.5) from its name. */
export const simulatedEvalLoss = (jobName: string, override?: number) => override ?? 0.5 + (fnv1a(jobName) % 1000) / 1000;

/** The trainer's stdout lines for this config, ending with an evaluation whose loss is `finalEvalLoss`. */
export function simulatedTrainerLog(config: TrainingConfigSections, finalEvalLoss: number): string[] {
  const epochs = Math.max(1, Math.ceil(config.TrainingArguments?.num_train_epochs ?? 3)); // transformers' default: 3
  const evaluates = (config.DatasetConfig?.train_test_split ?? 1) < 1 && (config.TrainingArguments?.eval_strategy ?? 'no') !== 'no';
  const stepsPerEpoch = 4;
  const total = epochs * stepsPerEpoch;
  const lines = ['SIMULATION: the trainer of the aks-finetune local stack (no GPU, no model)'];
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const loss = finalEvalLoss + 0.2 * (epochs - epoch + 1);
    lines.push(`${Math.round((100 * epoch) / epochs)}%| | ${epoch * stepsPerEpoch}/${total} [00:0${epoch}<00:00,  4.1it/s]`);
    lines.push(dict({ loss, grad_norm: 0.1, learning_rate: 5e-5 * (1 - epoch / (epochs + 1)), epoch }));
    if (evaluates) {
      const evalLoss = finalEvalLoss + 0.1 * (epochs - epoch);
      lines.push(dict({ eval_loss: evalLoss, eval_runtime: 0.78, eval_samples_per_second: 20.56, eval_steps_per_second: 2.569, epoch }));
    }
  }
  lines.push(dict({ train_runtime: 3.89, train_samples_per_second: 32.87, train_steps_per_second: 4.109, train_loss: finalEvalLoss + 0.3, epoch: epochs }));
  lines.push('Fine-Tuning completed');
  return lines;
}

/** Writes `lines` as `container`'s CRI log file under `dir` and points kwok's Logs object for the pod at it. */
export async function publishContainerLog(kubeConfig: KubeConfig, pod: V1Pod, container: string, lines: string[], dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${container}.log`);
  const now = new Date().toISOString();
  writeFileSync(file, lines.map((line) => `${now} stdout F ${line}\n`).join(''));
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
    if (served) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`kwok does not serve the log of ${namespace}/${name}/${container}`);
}
