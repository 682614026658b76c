// Starts the local stack once for the whole run, or attaches to one already running.
// The stack's environment (.stack/env) is put in process.env before test processes fork, so
// NODE_EXTRA_CA_CERTS is in place when they start.
import { startStack, stopStack } from '../scripts/stack/cli.js';

export default async function setup(): Promise<() => Promise<void>> {
  const { env, started } = await startStack(undefined, (line) => console.log(`[stack] ${line}`));
  Object.assign(process.env, env);
  return async () => {
    // Leave a stack the developer started alone; stop the one this run started.
    if (started.length > 0) await stopStack(undefined, () => undefined);
  };
}
