// The endpoint's Kubernetes objects: vLLM private to the pod with runtime LoRA updating, the router
// sidecar as the Service's target and the readiness gate, ownership by workflow id alone.
import { describe, expect, it } from 'vitest';
import { endpointObjects } from '../activities/kubernetes/endpoint-objects.js';
import { runIdLabel, temporalRunIdLabel, workflowIdAnnotation } from '../activities/kubernetes/labels.js';
import { defaultImages } from '../activities/kubernetes/tuning-job.js';
import { parseEndpointSpec } from '../domain/endpoint.js';

const endpoint = parseEndpointSpec({ name: 'support', baseModel: 'phi-3-mini-4k-instruct', vmSize: 'Standard_NC24ads_A100_v4', maxLoras: 3, maxLoraRank: 16 });
const desired = { generation: 2, adapters: [{ versionName: 'bot-v1', image: `reg.example/a@sha256:${'a'.repeat(64)}` }], aliases: { bot: 'bot-v1' } };
const { deployment, service, configMap } = endpointObjects(
  { endpoint, namespace: 'team-a', owner: { workflowId: 'endpoint-support' }, pool: 'ep1', taints: ['sku=gpu:NoSchedule'], gpus: 1, replicas: 2, desired, workerImage: 'reg.example/worker:1' },
  defaultImages,
);
const pod = deployment.spec!.template.spec!;
const [vllm, router] = pod.containers;

describe('endpointObjects', () => {
  it('runs vLLM on localhost:5000 with runtime LoRA updating and the endpoint limits', () => {
    expect(vllm!.args).toEqual(expect.arrayContaining(['--enable-lora', '--port', '5000', '--host', '127.0.0.1']));
    expect(vllm!.args!.join(' ')).toContain('--max-loras 3 --max-lora-rank 16');
    expect(vllm!.env).toContainEqual({ name: 'VLLM_ALLOW_RUNTIME_LORA_UPDATING', value: 'True' });
    expect(vllm!.volumeMounts).toContainEqual({ name: 'adapters', mountPath: '/mnt/adapters', readOnly: true });
  });

  it('runs the router from the worker image as the readiness gate, under its own service account', () => {
    expect(router).toMatchObject({
      name: 'adapter-router',
      image: 'reg.example/worker:1',
      command: ['node', '--import', 'tsx', 'workers/main.ts', 'adapter-router'],
      readinessProbe: { httpGet: { path: '/_router/ready', port: 8000 } },
      volumeMounts: [{ name: 'adapters', mountPath: '/mnt/adapters' }, { name: 'router-tmp', mountPath: '/tmp' }],
      securityContext: { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
    });
    expect(router!.env).toContainEqual({ name: 'ADAPTER_ROUTER_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
    expect(router!.env).toContainEqual({ name: 'ADAPTER_ROUTER_CONFIGMAP', value: 'support-adapters' });
    expect(pod.serviceAccountName).toBe('aks-finetune-adapter-router');
    expect(deployment.spec!.replicas).toBe(2);
    // A pool holds exactly one node per replica: a rollout must not need a surge pod.
    expect(deployment.spec!.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
  });

  it('serves port 80 through the router and carries the desired state in <endpoint>-adapters', () => {
    expect(service.spec!.ports).toEqual([{ name: 'http', port: 80, targetPort: 8000 }]);
    expect(service.spec!.selector).toEqual(deployment.spec!.selector!.matchLabels);
    expect(configMap.metadata!.name).toBe('support-adapters');
    expect(JSON.parse(configMap.data!['desired.json']!)).toEqual(desired);
  });

  it('is owned by the workflow id with no run id, so a continued-as-new run keeps it', () => {
    for (const o of [deployment, service, configMap]) {
      expect(o.metadata!.annotations![workflowIdAnnotation]).toBe('endpoint-support');
      expect(o.metadata!.labels).toHaveProperty([runIdLabel]);
      expect(o.metadata!.labels).not.toHaveProperty([temporalRunIdLabel]);
    }
  });
});
