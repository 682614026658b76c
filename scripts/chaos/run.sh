#!/usr/bin/env bash
# `npm run chaos [-- flags]`: starts the chaos run's own local stack (state in .stack/chaos/stack,
# every port shifted by CHAOS_PORT_OFFSET, default 50, so restarting its Temporal or API server
# never disturbs the development stack), runs scripts/chaos/main.ts in that stack's environment,
# and stops the stack again (CHAOS_KEEP_STACK=1 leaves it running). Exits with main.ts's status.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# --help prints the flags and starts nothing.
case " $* " in *" --help "* | *" -h "*) exec npx tsx scripts/chaos/usage.ts ;; esac
export STACK_DIR="${CHAOS_STACK_DIR:-.stack/chaos/stack}"
export STACK_PORT_OFFSET="${CHAOS_PORT_OFFSET:-50}"
# A fresh stack every time: no runs, pools or objects of an earlier chaos run.
npx tsx scripts/stack/cli.ts stop >/dev/null
rm -rf "$STACK_DIR/data" "$STACK_DIR/logs" "$STACK_DIR/pids"
npx tsx scripts/stack/cli.ts start >/dev/null || { npx tsx scripts/stack/cli.ts stop >/dev/null; exit 1; }
bash scripts/with-stack-env.sh npx tsx scripts/chaos/main.ts "$@"
rc=$?
[ "${CHAOS_KEEP_STACK:-}" = 1 ] || npx tsx scripts/stack/cli.ts stop >/dev/null
exit $rc
