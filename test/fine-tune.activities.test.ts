// The pipeline's Kubernetes activities against the real API server: KAITO's Job layout,
// adoption on retry, refusal of another run's objects, cleanup by run label.
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { BatchV1Api, NetworkingV1Api } from '@kubernetes/client-node';
import { findModelPreset } from '../domain/models.js';
import { trainingConfig } from '../domain/training-config.js';
import { createWorkerActivities } from '../workers/worker.js';
import { config, core, adminKubeConfig, unique, createRunNamespace } from './support.js';

const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const activity = new MockActivityEnvironment();
const batch = adminKubeConfig.makeApiClient(BatchV1Api);
const namespace = `act-${unique()}`;
const owner = { workflowId: `run-${unique()}`, runId: randomUUID() };
/** An earlier run under the same workflow id. */
const earlierRun = { ...owner, runId: randomUUID() };
const inputs = { namespace, owner, configMap: 'r1-params', resultsClaim: 'r1-results', config: trainingConfig('qlora', { loraR: 16 }) };
const tuningJob = {
  name: 'r1-train',
  owner,
  model: findModelPreset('phi-3-mini-4k-instruct')!,
  gpus: 2,
  // No such pool: the Job stays pending, which is all these tests need.
  pool: 'nosuchpool',
  taints: ['sku=gpu:NoSchedule'],
  dataset: { urls: ['https://data.example.com/a/train.jsonl'] },
  configMap: 'r1-params',
  resultsClaim: 'r1-results',
  backoffLimit: 1,
  activeDeadlineSeconds: 7200,
};

beforeAll(async () => {
  await createRunNamespace(namespace);
  await activity.run(activities.ensureNamespace, namespace);
});

afterAll(async () => {
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('fineTune Kubernetes activities', () => {
  it("write KAITO's training_config.yaml and a results claim, and adopt them on retry", async () => {
    await activity.run(activities.ensureTuningInputs, inputs);
    await activity.run(activities.ensureTuningInputs, inputs); // a retry adopts
    // The namespace's tuning pods may reach the internet and the cluster DNS, nothing internal.
    const policy = await adminKubeConfig.makeApiClient(NetworkingV1Api).readNamespacedNetworkPolicy({ name: 'aks-finetune-tuning-egress', namespace });
    expect(policy.spec?.podSelector?.matchLabels).toEqual({ 'aks-finetune.io/role': 'trainer' });
    expect(policy.spec?.egress?.[1]?.to?.[0]?.ipBlock?.except).toEqual(expect.arrayContaining(['10.0.0.0/8', '169.254.0.0/16', '168.63.129.16/32', '127.0.0.0/8', '100.64.0.0/10']));
    expect(policy.spec?.egress?.[1]?.to?.[1]?.ipBlock?.except).toEqual(expect.arrayContaining(['fc00::/7', 'fe80::/10', '64:ff9b::/96']));
    const map = await core.readNamespacedConfigMap({ name: 'r1-params', namespace });
    const yaml = parse(map.data!['training_config.yaml']!) as { training_config: Record<string, Record<string, unknown>> };
    expect(Object.keys(yaml.training_config).sort()).toEqual(['DataCollator', 'DatasetConfig', 'LoraConfig', 'ModelConfig', 'QuantizationConfig', 'TrainingArguments']);
    expect(yaml.training_config.LoraConfig).toEqual({ r: 16, lora_alpha: 8, lora_dropout: 0 });
    const claim = await core.readNamespacedPersistentVolumeClaim({ name: 'r1-results', namespace });
    expect(claim.metadata?.labels).toMatchObject({ 'aks-finetune.io/run': owner.workflowId, 'aks-finetune.io/run-id': owner.runId });
    expect(claim.metadata?.annotations?.['aks-finetune.io/workflow-id']).toBe(owner.workflowId);
  });

  it("refuse to adopt another run's objects, an earlier run's under the same workflow id included", async () => {
    const someoneElse = { workflowId: 'someone-else', runId: randomUUID() };
    for (const other of [someoneElse, earlierRun]) {
      const error = await activity.run(activities.ensureTuningInputs, { ...inputs, owner: other }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ApplicationFailure);
      expect(error).toMatchObject({ type: 'NameTaken', nonRetryable: true });
      expect((error as Error).message).toBe(
        `ConfigMap ${namespace}/r1-params exists but belongs to run ${owner.workflowId} (${owner.runId}), not ${other.workflowId} (${other.runId})`,
      );
    }
  });

  it("create the tuning Job in KAITO's layout once; a retry adopts it", async () => {
    expect(await activity.run(activities.startTuningJob, namespace, tuningJob)).toEqual({ adopted: false });
    expect(await activity.run(activities.startTuningJob, namespace, tuningJob)).toEqual({ adopted: true });
    const job = await batch.readNamespacedJob({ name: 'r1-train', namespace });
    const pod = job.spec!.template.spec!;
    expect(job.spec?.backoffLimit).toBe(1);
    expect(job.spec?.activeDeadlineSeconds).toBe(7200);
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.initContainers!.map((c) => c.name)).toEqual(['model-weights-downloader', 'dataset-download']);
    expect(pod.initContainers![0]!.command).toEqual(['oras', 'pull', 'mcr.microsoft.com/aks/kaito/kaito-phi-3-mini-4k-instruct:0.2.0', '-o', '/workspace/weights']);
    expect(pod.initContainers![1]!.command).toEqual(['node', '--import', 'tsx', 'workers/main.ts', 'download-dataset', '--dir', '/mnt/data', 'https://data.example.com/a/train.jsonl']);
    const trainer = pod.containers[0]!;
    expect(trainer.image).toBe('mcr.microsoft.com/aks/kaito/kaito-base:0.5.0');
    expect(trainer.command!.join(' ')).toContain('accelerate launch --num_processes=2 /workspace/tfs/fine_tuning.py');
    expect(trainer.resources).toEqual({ requests: { 'nvidia.com/gpu': '2' }, limits: { 'nvidia.com/gpu': '2' } });
    expect(trainer.volumeMounts!.map((m) => m.mountPath)).toEqual(['/dev/shm', '/workspace/weights', '/mnt/config', '/mnt/results', '/mnt/data']);
    expect(trainer.env).toContainEqual({ name: 'DEFAULT_TARGET_MODULES', value: 'k_proj,q_proj,v_proj,o_proj,gate_proj,down_proj,up_proj' });
    expect(pod.nodeSelector).toEqual({ 'kubernetes.azure.com/agentpool': 'nosuchpool' });
    expect(pod.tolerations).toContainEqual({ key: 'sku', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' });
    expect(pod.tolerations).toContainEqual({ key: 'kubernetes.azure.com/scalesetpriority', operator: 'Equal', value: 'spot', effect: 'NoSchedule' });
  });

  it('report a Job whose pod cannot be scheduled as pending', async () => {
    expect(await activity.run(activities.checkJob, namespace, 'r1-train')).toMatchObject({ state: 'pending', restarts: 0 });
  });

  it("delete every object of the run by its labels, nothing twice, and nothing of an earlier run under the same workflow id", async () => {
    await activity.run(activities.ensureTuningInputs, { ...inputs, owner: earlierRun, configMap: 'r0-params', resultsClaim: 'r0-results' });
    const deleted = (await activity.run(activities.deleteRunObjects, namespace, owner, { includeInference: true })) as string[];
    expect(deleted.sort()).toEqual(['ConfigMap/r1-params', 'Job/r1-train', 'PersistentVolumeClaim/r1-results']);
    expect(await activity.run(activities.deleteRunObjects, namespace, owner, { includeInference: true })).toEqual([]);
    expect((await core.readNamespacedConfigMap({ name: 'r0-params', namespace })).metadata?.labels?.['aks-finetune.io/run-id']).toBe(earlierRun.runId);
    const earlier = (await activity.run(activities.deleteRunObjects, namespace, earlierRun, { includeInference: true })) as string[];
    expect(earlier.sort()).toEqual(['ConfigMap/r0-params', 'PersistentVolumeClaim/r0-results']);
  });

});
