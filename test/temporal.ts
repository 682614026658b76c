// Workflow tests share one dev server (the stack's): each file bundles the workflows once and
// runs a Worker per test on its own task queue.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { afterAll, beforeAll } from 'vitest';
import type { Activities } from '../activities/index.js';
import { workflowsPath } from '../workers/worker.js';
import { config, unique } from './support.js';

export function useTemporal() {
  let env: TestWorkflowEnvironment | undefined;
  let workflowBundle: WorkflowBundle;
  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: config.temporal.address, namespace: config.temporal.namespace });
    workflowBundle = await bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') });
  });
  afterAll(async () => {
    await env?.teardown();
  });
  return {
    get env(): TestWorkflowEnvironment {
      if (!env) throw new Error('the Temporal test environment is set up in beforeAll');
      return env;
    },
    /** Runs `run` while a Worker with these activities polls a fresh task queue (or the one given, where runs already wait). */
    async withWorker<T>(activities: Partial<Activities>, run: (taskQueue: string) => Promise<T>, taskQueue = `test-${unique()}`): Promise<T> {
      const worker = await Worker.create({ connection: this.env.nativeConnection, taskQueue, workflowBundle, activities });
      return worker.runUntil(run(taskQueue));
    },
  };
}
