// A person starting a run from the Temporal Web UI's Start Workflow form (the dev server's UI,
// in Debian's Chromium driven by playwright-core), with a README input, and seeing it complete.
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkerActivities } from '../workers/worker.js';
import { config, eventually, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';

const temporal = useTemporal();
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const uiUrl = process.env.TEMPORAL_UI_URL ?? 'http://127.0.0.1:8233';
let browser: Browser;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    // Headless on a machine with no network beyond loopback: nothing in the background.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
  });
});

afterAll(async () => {
  await browser?.close();
});

describe('Temporal Web UI', () => {
  it('starts a fineTune from the Start Workflow form, which completes on the local stack', async () => {
    const workflowId = fineTuneWorkflowId(`ui-${unique()}`);
    // Like the README's example input, pointed at the local registry.
    const input = testFineTuneRequest({ gpu: { vmSize: 'Standard_NC24ads_A100_v4', spot: false }, release: { policy: 'delete', idleGraceMinutes: 0 } });
    await temporal.withWorker(activities, async (taskQueue) => {
      const page = await browser.newPage();
      await page.goto(`${uiUrl}/namespaces/default/workflows/start-workflow`);
      await page.locator('#workflowId').fill(workflowId);
      await page.locator('#taskQueue').fill(taskQueue);
      await page.locator('#workflowType').fill('fineTune');
      await page.locator('.cm-content').click();
      await page.keyboard.insertText(JSON.stringify(input));
      // The editor hands its text to the form when it loses focus (debounced).
      await page.locator('#workflowType').click();
      await page.waitForTimeout(1000);
      await page.getByTestId('start-workflow-button').click();
      await eventually(
        () => temporal.env.client.workflow.getHandle(workflowId).describe().then(() => true, () => undefined),
        'the UI to start the run',
        30_000,
      ).catch(async (err: unknown) => {
        await page.screenshot({ path: '/tmp/temporal-ui-start.png', fullPage: true });
        throw err;
      });

      const result = await temporal.env.client.workflow.getHandle(workflowId).result();
      expect(result).toMatchObject({ phase: 'succeeded', model: 'phi-3-mini-4k-instruct', method: 'qlora' });

      // The UI shows the run, completed.
      await page.goto(`${uiUrl}/namespaces/default/workflows/${workflowId}`);
      await page.getByText('Completed', { exact: true }).first().waitFor({ timeout: 30_000 });
      await page.close();
    });
  });
});
