// The chaos run's flags, printed by `npm run chaos -- --help` (run.sh runs this file alone, so the
// help needs no stack and no configuration) and by main.ts's --help.
import { faultKinds } from './faults.js';

export const chaosUsage = `npm run chaos [-- flags]   (docs/chaos.md, "Chaos run"; each flag also reads the variable in brackets)
  --runs N              concurrent runs: fineTune, fineTune+deploy, retrain (CHAOS_RUNS, 30)
  --seed N              the fault plan's seed; random when unset (CHAOS_SEED)
  --faults N            faults to inject (CHAOS_FAULTS, max(6, runs))
  --kinds a,b           fault kinds, from: ${faultKinds.join(', ')} (CHAOS_FAULT_KINDS, all)
  --minutes N           time limit for the runs (CHAOS_MINUTES, 20)
  --training-seconds N  simulated training time (CHAOS_TRAINING_SECONDS, 15)
  --start-seconds N     the runs' starts are spread over this (CHAOS_START_SECONDS, 3 × runs)
  --endpoints 0|1       also run an endpoint and a promotion into it (CHAOS_ENDPOINTS, 1)`;

if (import.meta.url === `file://${process.argv[1]}`) console.log(chaosUsage);
