#!/usr/bin/env bash
# `npm test`: installs what is missing, type-checks and lints, runs the whole suite on the local
# stack (vitest's global setup starts it, or reuses a running one), prints a one-line summary
# "vitest: N passed, N failed, N skipped", then runs the small fixed-seed chaos run on its own
# stack ("chaos: passed|failed"). Extra arguments go to vitest.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh || exit 1
npm run --silent build || exit 1
mkdir -p .stack
results=.stack/vitest-results.json
rm -f "$results"
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
rc=$?
if [ -f "$results" ]; then
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  ' "$results"
fi
# The chaos run's small, fixed-seed version (docs/chaos.md, "Chaos run"): its own stack, about 3 minutes.
bash scripts/chaos/run.sh --runs 6 --seed 36 --faults 8 --minutes 6 --training-seconds 15 --start-seconds 45 \
  --kinds kill-one-worker,kill-all-workers,temporal-restart,apiserver-restart,trainer-oom,cancel,terminate,spot-eviction,arm-throttle,arm-preemption
chaos_rc=$?
echo "chaos: $([ $chaos_rc -eq 0 ] && echo passed || echo failed) (audit: .stack/chaos/audit.txt)"
[ $rc -ne 0 ] && exit $rc
exit $chaos_rc
