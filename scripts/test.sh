#!/usr/bin/env bash
# `npm test`: installs what is missing, type-checks and lints, runs the whole suite on the local
# stack (vitest's global setup starts it, or reuses a running one), and ends with a one-line
# summary "vitest: N passed, N failed, N skipped". Extra arguments go to vitest.
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
exit $rc
