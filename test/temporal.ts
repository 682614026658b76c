// Workflow tests share one dev server (the stack's): each file bundles the workflows once and
// runs a Worker per test on its own task queue. The Runtime (installed once per process, and
// vitest runs each file in its own) gets the worker's own logger and metrics set-up; a file may
// pass its own, e.g. with a metrics endpoint.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type RuntimeOptions, Worker, type WorkflowBundle } from '@temporalio/worker';
import { afterAll, beforeAll } from 'vitest';
import type { Activities } from '../activities/index.js';
import { clusterTaskQueue } from '../domain/cluster-targets.js';
import { runtimeOptions } from '../workers/telemetry.js';
import { preloadModules, workflowsPath } from '../workers/worker.js';
import { config, eventually, unique } from './support.js';

export function useTemporal(runtime: RuntimeOptions = runtimeOptions({ logFormat: 'pretty', logLevel: 'WARN' })) {
  let env: TestWorkflowEnvironment | undefined;
  let workflowBundle: WorkflowBundle;
  beforeAll(async () => {
    Runtime.install(runtime);
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: config.temporal.connection.address, namespace: config.temporal.namespace, connectionOptions: config.temporal.connection });
    workflowBundle = await bundleWorkflowCode({ workflowsPath, preloadModules, logger: new DefaultLogger('WARN') });
  });
  afterAll(async () => {
    await env?.teardown();
  });
  return {
    get env(): TestWorkflowEnvironment {
      if (!env) throw new Error('the Temporal test environment is set up in beforeAll');
      return env;
    },
    /**
     * Returns once visibility, which the reaper and warm-pool claims read, no longer lists the
     * workflow as running: it catches up with a run that closed asynchronously.
     */
    async closedInVisibility(workflowId: string): Promise<void> {
      await eventually(
        async () => ((await this.env.client.workflow.count(`WorkflowId = '${workflowId}' AND ExecutionStatus = 'Running'`)).count === 0 ? true : undefined),
        `visibility to list ${workflowId} as closed`,
      );
    },
    /** Runs `run` while a Worker with these activities polls a fresh task queue (or the one given, where runs already wait). */
    async withWorker<T>(activities: Partial<Activities>, run: (taskQueue: string) => Promise<T>, taskQueue = `test-${unique()}`): Promise<T> {
      const worker = await Worker.create({ connection: this.env.nativeConnection, taskQueue, workflowBundle, activities });
      return worker.runUntil(run(taskQueue));
    },
    /** withWorker, with an activity Worker per cluster target on that target's queue, as the worker process runs them (createClusterWorkers). */
    async withClusterWorkers<T>(activities: Partial<Activities>, clusters: Record<string, Partial<Activities>>, run: (taskQueue: string) => Promise<T>): Promise<T> {
      const taskQueue = `test-${unique()}`;
      const targets = await Promise.all(
        Object.entries(clusters).map(([name, a]) => Worker.create({ connection: this.env.nativeConnection, taskQueue: clusterTaskQueue(taskQueue, name), activities: a })),
      );
      const running = targets.map((w) => w.run());
      try {
        return await this.withWorker(activities, run, taskQueue);
      } finally {
        for (const w of targets) w.shutdown();
        await Promise.all(running);
      }
    },
  };
}
