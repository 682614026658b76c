// Evaluation over HTTP against an endpoint: a prompt suite through the endpoint's Service for
// several model names in one pass (the candidate and production answer the same prompts from
// the same server), and the watch window's readings: each ready replica's router counters and
// the smoke prompts. Read-only, so a retry simply asks again.
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { type PromptCase, scoreSuite, type SuiteResult } from '../../domain/evaluation.js';
import { addTraffic, aliasTrafficByVersion, type TrafficCount } from '../../domain/promotion.js';
import { routerPaths } from '../../domain/adapter-router.js';

export interface EvaluationDeps {
  kubeConfig: KubeConfig;
  /** URL of an inference Service's API, with {namespace} and {service} placeholders. */
  inferenceUrlTemplate: string;
  /** URL of one inference pod's router, with {namespace}, {pod} and {podIP} placeholders. */
  inferencePodUrlTemplate: string;
}

/** Answers are short and scored as text; greedy decoding keeps a model's answer to a prompt the same on every call. */
const completionParams = { max_tokens: 256, temperature: 0 };

export function createEvaluationActivities({ kubeConfig, inferenceUrlTemplate, inferencePodUrlTemplate }: EvaluationDeps) {
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const serviceUrl = (namespace: string, service: string) => inferenceUrlTemplate.replace('{namespace}', namespace).replace('{service}', service);

  /** The model's answer, or undefined when the server answered with an error (the case fails). A server that cannot be reached fails the activity: it retries. */
  async function complete(baseUrl: string, model: string, prompt: string): Promise<string | undefined> {
    const res = await fetch(`${baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt, ...completionParams }),
      signal: AbortSignal.timeout(60_000),
    });
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    const body = (await res.json()) as { choices?: { text?: string }[] };
    return body.choices?.[0]?.text;
  }

  /** Each case for every model in turn, prompt by prompt, so every model meets the server in the same state. */
  async function runSuite(baseUrl: string, models: string[], cases: PromptCase[]): Promise<SuiteResult[]> {
    const answers: (string | undefined)[][] = models.map(() => []);
    for (const [i, c] of cases.entries()) {
      for (const [m, model] of models.entries()) answers[m]![i] = await complete(baseUrl, model, c.prompt);
      Context.current().heartbeat({ case: i + 1 });
    }
    return answers.map((a) => scoreSuite(cases, a));
  }

  /** The ready pods of the endpoint's Deployment (named like the endpoint): those the Service sends traffic to. */
  async function readyReplicas(namespace: string, endpoint: string): Promise<V1Pod[]> {
    const deployment = await apps.readNamespacedDeployment({ namespace, name: endpoint });
    const labelSelector = Object.entries(deployment.spec?.selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    const pods = await core.listNamespacedPod({ namespace, labelSelector });
    return pods.items.filter((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  }

  const podUrl = (pod: V1Pod) =>
    inferencePodUrlTemplate.replace('{namespace}', pod.metadata!.namespace!).replace('{pod}', pod.metadata!.name!).replace('{podIP}', pod.status?.podIP ?? '');

  return {
    /** Scores the suite for each model name (in order), all through the endpoint's Service. */
    async evaluateSuite(params: { namespace: string; service: string; models: string[]; cases: PromptCase[] }): Promise<SuiteResult[]> {
      return runSuite(serviceUrl(params.namespace, params.service), params.models, params.cases);
    },

    /**
     * One reading of the watch window: the requests that named `alias`, per version they resolved
     * to, summed over the endpoint's ready replicas (their routers' counters, cumulative), and the
     * smoke prompts on the alias and on the previous version by its name.
     */
    async watchAlias(params: { namespace: string; endpoint: string; alias: string; previousVersion?: string; smokeCases: PromptCase[] }): Promise<{
      traffic: Record<string, TrafficCount>;
      smoke: { current: SuiteResult; previous?: SuiteResult };
    }> {
      let traffic: Record<string, TrafficCount> = {};
      for (const pod of await readyReplicas(params.namespace, params.endpoint)) {
        const res = await fetch(`${podUrl(pod)}${routerPaths.metrics}`, { signal: AbortSignal.timeout(30_000) });
        if (!res.ok) throw new Error(`${pod.metadata!.name} ${routerPaths.metrics}: ${res.status} ${await res.text()}`);
        traffic = addTraffic(traffic, aliasTrafficByVersion(await res.text(), params.alias));
      }
      const models = [params.alias, ...(params.previousVersion ? [params.previousVersion] : [])];
      const [current, previous] = await runSuite(serviceUrl(params.namespace, params.endpoint), models, params.smokeCases);
      return { traffic, smoke: { current: current!, previous } };
    },
  };
}
