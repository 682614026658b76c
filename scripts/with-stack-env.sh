#!/usr/bin/env bash
# Runs a command with the local stack's environment (.stack/env, written by `npm run stack`).
# NODE_EXTRA_CA_CERTS must be in the environment when Node starts, hence a wrapper.
set -euo pipefail
env_file="${STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.stack}/env"
[ -f "$env_file" ] || { echo "no $env_file: start the stack with 'npm run stack'" >&2; exit 1; }
set -a; . "$env_file"; set +a
exec "$@"
