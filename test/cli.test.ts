// The CLI as a person runs it (a child process), against the local stack.
import { execFile } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadStackConfig } from '../scripts/stack/config.js';
import { createWorkerActivities } from '../workers/worker.js';
import { FineTuneFailedError, fineTuneResult, getFineTuneStatus } from '../client/fine-tune-client.js';
import { fineTune, fineTuneStatusQuery } from '../workflows/fine-tune.js';
import { nodePoolName } from '../workflows/naming.js';
import { config, createRunNamespace, emulator, eventually, pushTestAdapter, simulator, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';

const temporal = useTemporal();
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'cli-'));

function specFile(overrides: Record<string, unknown> = {}): string {
  const file = join(dir, `spec-${unique()}.yaml`);
  writeFileSync(
    file,
    stringify({ ...testFineTuneRequest(), ...overrides }),
  );
  return file;
}

/** The exit code, stdout and stderr together (out), and stdout alone. */
async function cli(args: string[], taskQueue = 'unused'): Promise<{ code: number; out: string; stdout: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', ...args], {
      env: { ...process.env, TEMPORAL_TASK_QUEUE: taskQueue },
    });
    return { code: 0, out: stdout + stderr, stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr, stdout: e.stdout };
  }
}

afterEach(async () => {
  await simulator.settings({ trainingMs: 500 });
});

describe('CLI', () => {
  it('plan validates and estimates without writing to ARM or the cluster', async () => {
    const audit = loadStackConfig().auditLog;
    const auditBefore = statSync(audit).size;
    await emulator.clearRequests();
    const { code, out } = await cli(['plan', specFile(), '--hours', '2']);
    expect(code).toBe(0);
    expect(out).toMatch(/node pool {2}create ft<hash of workflow id and run id>: 1 x Standard_NC24ads_A100_v4, 1 GPU\(s\)/);
    expect(out).toMatch(/estimate {3}2 GPU-hours for 2 h of training, about 7\.35 USD \(prices as of 2025-06-01\)/);
    expect(await emulator.requests()).toEqual([]);
    expect(statSync(audit).size).toBe(auditBefore);
  });

  it('plan --quota prints the GPU attempts in order with their quota, reading ARM with GETs only', async () => {
    await emulator.capacity({ quotas: { standardNCADSA100v4Family: 0 } });
    await emulator.clearRequests();
    try {
      const spec = specFile({ gpu: { vmSize: 'Standard_NC24ads_A100_v4', zones: ['1', '2'], candidates: [{ vmSize: 'Standard_NC40ads_H100_v5' }] } });
      const { code, out } = await cli(['plan', spec, '--quota']);
      expect(code).toBe(0);
      expect(out).toMatch(/capacity {3}3 attempt\(s\) in this order, for up to 30 min:/);
      expect(out).toMatch(/1\. Standard_NC24ads_A100_v4 zone 1 \(request, 3\.67 USD\/h\): skipped, standardNCADSA100v4Family: 0 of 0 vCPUs in use/);
      expect(out).toMatch(/3\. Standard_NC40ads_H100_v5 \(listed, 6\.98 USD\/h\): quota ok/);
      expect(out).toMatch(/quota {6}eastus: standardNCADSA100v4Family: 0 of 0 vCPUs in use; cores: \d+ of 10000 vCPUs in use; standardNCadsH100v5Family: \d+ of 10000 vCPUs in use/);
      expect(new Set((await emulator.requests()).map((r) => r.method))).toEqual(new Set(['GET']));
    } finally {
      await emulator.capacity({});
    }
  });

  it('is the installed command aks-finetune (package.json bin), with help for each command and exit code 2 for an unknown one', async () => {
    const npx = (args: string[]) =>
      run('npx', ['aks-finetune', ...args]).then(
        ({ stdout }) => ({ code: 0, out: stdout }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
    const all = await npx(['--help']);
    expect(all.code).toBe(0);
    expect(all.out).toMatch(/^Usage: aks-finetune <command> \[options\]/);
    expect(all.out).toContain('Exit codes: 0 success');
    const schedule = await npx(['schedule', 'create', '--help']);
    expect(schedule.code).toBe(0);
    expect(schedule.out).toContain('  schedule create|update <id> <spec> (--cron EXPR | --every DURATION) [--timezone TZ]');
    expect(schedule.out).toContain('[--catchup-window D] [--jitter D]');
    expect(schedule.out).toContain('  schedule list');
    expect(schedule.out).not.toContain('endpoint create');
    expect((await cli(['help', 'reject'])).out).toContain('approve|reject <id> [--by WHO]');
    const unknown = await cli(['help', 'deploy']);
    expect(unknown.code).toBe(2);
    expect(unknown.out).toMatch(/^unknown command "deploy"/);
  });

  it('prints each result as JSON with --json or --output json, and JSON Lines when it follows', async () => {
    const planned = await cli(['plan', specFile(), '--output', 'json']);
    expect(planned.code).toBe(0);
    expect(JSON.parse(planned.stdout)).toMatchObject({ plan: { model: { name: 'phi-3-mini-4k-instruct' }, gpuAttempts: [{ vmSize: 'Standard_NC24ads_A100_v4' }] }, estimate: { currency: 'USD' } });
    expect((await cli(['plan', specFile(), '--output', 'yaml'])).code).toBe(2);

    const id = fineTuneWorkflowId(`cli-json-${unique()}`);
    await temporal.withWorker(activities, async (taskQueue) => {
      const started = await cli(['start', specFile(), '--id', id, '--follow', '--json'], taskQueue);
      expect(started.code).toBe(0);
      // Every line of stdout parses; the last is the finished run.
      const states = started.stdout.trim().split('\n').map((line) => JSON.parse(line) as { workflowId: string; execution: string; status?: { phase: string } });
      expect(states.at(-1)).toMatchObject({ workflowId: id, execution: 'COMPLETED', status: { phase: 'succeeded' } });
      expect(JSON.parse((await cli(['status', id, '--json'], taskQueue)).stdout)).toMatchObject({ workflowId: id, status: { phase: 'succeeded' } });
      const listed = JSON.parse((await cli(['list', '--json', '--limit', '200'])).stdout) as { workflowId: string }[];
      expect(listed.map((r) => r.workflowId)).toContain(id);
      expect(JSON.parse((await cli(['schedule', 'list', '--json'])).stdout)).toBeInstanceOf(Array);
    });
  });

  it('refuses a bad spec with every problem and exit code 2', async () => {
    const { code, out } = await cli(['plan', specFile({ method: 'lora', tuning: { loadIn4bit: true }, gpu: { vmSize: 'Standard_D4s_v3' } })]);
    expect(code).toBe(2);
    expect(out).toContain('invalid fineTune request:');
    expect(out).toContain('- gpu.vmSize Standard_D4s_v3 has no GPUs');
    expect(out).toContain('- method lora trains a full-precision base');
  });

  it('starts a run, follows it to the end, then finds it with status and list', async () => {
    const id = fineTuneWorkflowId(`cli-${unique()}`);
    await temporal.withWorker(activities, async (taskQueue) => {
      const started = await cli(['start', specFile(), '--id', id, '--follow'], taskQueue);
      expect(started.out).toContain(`Started ${id}`);
      expect(started.code).toBe(0);
      expect(started.out).toMatch(/adapter: .*@sha256:[0-9a-f]{64}/);
      expect(started.out).toContain(`${id}: COMPLETED, phase succeeded`);

      const status = await cli(['status', id], taskQueue);
      expect(status.out).toMatch(/✓ release GPUs/);
      const list = await cli(['list', '--model', 'phi-3-mini-4k-instruct', '--phase', 'succeeded', '--limit', '200']);
      expect(list.out).toMatch(new RegExp(`${id}\\s+COMPLETED\\s+succeeded\\s+phi-3-mini-4k-instruct\\s+qlora`));
    });
  });

  it('shows why a run failed, as ARM said it with the advice, in the CLI and in the client\'s error', async () => {
    const id = fineTuneWorkflowId(`cli-quota-${unique()}`);
    const taskQueue = `test-${unique()}`;
    // Started before any worker polls its queue, so the fault is in place for the run's own pool.
    expect((await cli(['start', specFile(), '--id', id], taskQueue)).code).toBe(0);
    const handle = temporal.env.client.workflow.getHandle<typeof fineTune>(id);
    await emulator.addFault({ kind: 'quota', method: 'PUT', pool: nodePoolName('ft', { workflowId: id, runId: (await handle.describe()).runId }) });
    const armMessage = 'exceeding approved Standard_NC24ads_A100_v4 Cores quota';
    const advice = 'Request a quota increase for that VM family, or choose another vmSize';

    const followed = await temporal.withWorker(activities, () => cli(['status', id, '--follow'], taskQueue), taskQueue);
    expect(followed.code).toBe(1);
    expect(followed.out).toContain(`${id}: FAILED, phase failed`);
    // The last state followed, the closed run's (while it cleans up after the failure, a running
    // state already shows the message, without the type that only the closed run's failure carries).
    const errorLine = followed.out.split('\n').filter((line) => line.startsWith('  error: ')).at(-1);
    expect(errorLine).toMatch(/^ {2}error: GpuQuotaExceeded: Azure refused GPU node pool ft\w+: the subscription's Standard_NC24ads_A100_v4 quota is exhausted\./);
    expect(errorLine).toContain(advice);
    expect(errorLine).toContain(armMessage);
    expect(followed.out).not.toMatch(/Activity task failed|Workflow execution failed/);

    const error = await fineTuneResult(handle).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FineTuneFailedError);
    expect((error as FineTuneFailedError).failure.type).toBe('GpuQuotaExceeded');
    expect((error as Error).message).toMatch(new RegExp(`^fineTune ${id} failed: GpuQuotaExceeded: Azure refused GPU node pool`));
    expect((error as Error).message).toContain(advice);
    expect((error as Error).message).toContain(armMessage);
    expect((await getFineTuneStatus(temporal.env.client, id)).failure).toEqual((error as FineTuneFailedError).failure);
  });

  it('cancels a running run, which cleans up before it ends', async () => {
    await simulator.settings({ trainingMs: 20_000 });
    const id = fineTuneWorkflowId(`cli-cancel-${unique()}`);
    await temporal.withWorker(activities, async (taskQueue) => {
      expect((await cli(['start', specFile(), '--id', id], taskQueue)).code).toBe(0);
      const handle = temporal.env.client.workflow.getHandle(id);
      await eventually(async () => ((await handle.query(fineTuneStatusQuery)).phase === 'training' ? true : undefined), 'training');
      const cancelled = await cli(['cancel', id]);
      expect(cancelled.out).toContain(`Cancellation requested for ${id}`);
      await expect(handle.result()).rejects.toThrow();
      expect((await handle.query(fineTuneStatusQuery)).phase).toBe('cancelled');
    });
  });

  it('creates an endpoint, describes it, scales it to zero and back, and retires it', async () => {
    const namespace = `cli-ep-${unique()}`;
    await createRunNamespace(namespace);
    const name = `cli-${unique()}`;
    await temporal.withWorker(activities, async (taskQueue) => {
      const bad = await cli(['endpoint', 'create', name, '--model', 'phi-3-mini-4k-instruct', '--vm-size', 'Standard_NC24ads_A100_v4', '--namespace', namespace, '--idle-grace-seconds', '5'], taskQueue);
      expect(bad).toMatchObject({ code: 1, out: expect.stringMatching(/idleGraceSeconds/) });
      const created = await cli(['endpoint', 'create', name, '--model', 'phi-3-mini-4k-instruct', '--vm-size', 'Standard_NC24ads_A100_v4', '--namespace', namespace], taskQueue);
      expect(created).toMatchObject({ code: 0, out: expect.stringContaining(`Created endpoint ${name}`) });
      expect((await cli(['endpoint', 'scale', name, 'zero'], taskQueue)).out).toMatch(/scaled to zero/);
      const woken = await cli(['endpoint', 'scale', name, 'wake'], taskQueue);
      expect(woken.out).toMatch(/1 replica\(s\)[\s\S]*no alias served yet[\s\S]*cold starts 1 \(last [0-9.]+ s\)/);
      expect((await cli(['endpoint', 'describe', name], taskQueue)).out).toMatch(new RegExp(`${name} \\(${namespace}\\): phi-3-mini-4k-instruct on Standard_NC24ads_A100_v4`));
      expect((await cli(['endpoint', 'retire', name], taskQueue))).toMatchObject({ code: 0, out: expect.stringContaining('retired') });
    });
  });

  it('promotes an existing adapter image, shows the promotion awaiting approval, rejects it with who and why; a second promotion serves it, and describe says trained on what, scoring what', async () => {
    const namespace = `cli-promo-${unique()}`;
    await createRunNamespace(namespace);
    const name = `cli-${unique()}`;
    const promotion = (request: Record<string, unknown>) => {
      const file = join(dir, `promotion-${unique()}.yaml`);
      writeFileSync(file, stringify(request));
      return file;
    };
    const bad = await cli(['promote', promotion({ endpoint: { name }, alias: 'Bot', suite: { jsonl: 'x' } })]);
    expect(bad).toMatchObject({ code: 2, out: expect.stringMatching(/alias must be[\s\S]*image is required/) });
    const request = {
      endpoint: { name, baseModel: 'phi-3-mini-4k-instruct', vmSize: 'Standard_NC24ads_A100_v4' }, namespace, alias: 'bot',
      image: await pushTestAdapter(40, 'phi-3-mini-4k-instruct', { 'aks-finetune.io/workflow-id': 'fine-tune-support', 'aks-finetune.io/method': 'qlora', 'aks-finetune.io/dataset': 'https://example.com/support.jsonl' }),
      suite: { jsonl: '{"prompt":"hello bot","expect":{"contains":"hello"}}' }, approval: { required: true, timeoutMinutes: 60 },
    };
    await temporal.withWorker(activities, async (taskQueue) => {
      expect(await cli(['promote', promotion(request), '--id', name], taskQueue)).toMatchObject({ code: 0, out: `Started promote-${name}\n` });
      await eventually(async () => ((await cli(['promotion', `promote-${name}`], taskQueue)).out.includes('awaiting-approval') ? true : undefined), 'the promotion to await approval');
      expect(await cli(['reject', `promote-${name}`, '--by', 'alice', '--reason', 'tone is off'], taskQueue)).toMatchObject({ code: 0, out: `Rejected promote-${name}\n` });
      const followed = await cli(['promotion', `promote-${name}`, '--follow'], taskQueue);
      expect(followed).toMatchObject({ code: 0, out: expect.stringMatching(/COMPLETED, rejected: bot on endpoint[\s\S]*rejected by alice: tone is off/) });
      expect(await cli(['promote', promotion({ ...request, approval: 'none' }), '--id', `${name}-again`, '--follow'], taskQueue)).toMatchObject({ code: 0, out: expect.stringMatching(/promoted/) });
      const described = (await cli(['endpoint', 'describe', name], taskQueue)).out;
      expect(described).toMatch(/bot → bot-v2 /);
      expect(described).toMatch(/trained by fine-tune-support: qlora on phi-3-mini-4k-instruct, dataset https:\/\/example.com\/support.jsonl/);
      expect(described).toMatch(new RegExp(`scored: \\d/1 \\([\\d.]+%\\), promoted by promote-${name}-again`));
      expect((await cli(['endpoint', 'retire', name], taskQueue)).code).toBe(0);
    });
  });
});
