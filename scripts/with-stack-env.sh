#!/usr/bin/env bash
# Runs a command with the local stack's environment (.stack/env, written by `npm run stack`).
# NODE_EXTRA_CA_CERTS must be in the environment when Node starts, hence a wrapper.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stack_dir="${STACK_DIR:-.stack}"
case "$stack_dir" in /*) ;; *) stack_dir="$root/$stack_dir" ;; esac
env_file="$stack_dir/env"
[ -f "$env_file" ] || { echo "no $env_file: start the stack with 'npm run stack'" >&2; exit 1; }
set -a; . "$env_file"; set +a
exec "$@"
