#!/usr/bin/env bash
# Installs every tool the local stack needs, from package registries only (no Docker, no
# binary downloads). Idempotent: each tool is skipped when .tools/bin already holds the
# pinned version, so a second run finishes in seconds. Go's own caches (GOCACHE, GOMODCACHE)
# make a rebuild in a fresh clone on the same machine a link step rather than a compile.
#
#   scripts/setup.sh           everything npm test needs
#   scripts/setup.sh --stack   only what the local stack needs (npm run stack, demo, bench, chaos):
#                              not kaito-render nor the trainer venv, which only tests use
#
# Everything cold runs side by side: the Go builds (one alone leaves a core idle while it
# downloads modules and while it links), npm ci and the trainer venv's downloads.
set -euo pipefail

PROFILE=test
case "${1:-}" in
  --stack) PROFILE=stack ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--stack]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS_DIR:-.tools}"
case "$TOOLS" in /*) ;; *) TOOLS="$ROOT/$TOOLS" ;; esac
BIN="$TOOLS/bin"
LOGS="$TOOLS/logs"
mkdir -p "$BIN" "$LOGS"

TEMPORAL_CLI_VERSION=v1.5.1   # newest tag `go install` accepts (later ones carry replace directives)
KUBERNETES_VERSION=v1.33.13
KWOK_VERSION=v0.7.0

log() { printf '[setup] %s\n' "$*"; }
fail() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
stamp_ok() { [ -f "$BIN/.$1.version" ] && [ "$(cat "$BIN/.$1.version")" = "$2" ] && [ -x "$BIN/$1" ]; }
stamp() { echo "$2" > "$BIN/.$1.version"; }

# Runs a step with its output in a log; on failure prints the log's tail.
run_logged() {
  local name="$1"; shift
  local logfile="$LOGS/setup-$name.log"
  local started=$SECONDS
  if ! "$@" >"$logfile" 2>&1; then
    tail -n 40 "$logfile" >&2
    fail "$name failed (full log: $logfile)"
  fi
  log "$name done in $((SECONDS - started))s"
}

require() { command -v "$1" >/dev/null 2>&1 || fail "$1 is required: $2"; }
require go "install Go >= 1.24"
require node "install Node.js 20"
require npm "install npm"
require openssl "apt-get install openssl"
require python3 "install Python >= 3.10"

# --- Debian packages: etcd, the OCI registry (distribution), Chromium for the UI test --------
apt_missing=()
command -v etcd >/dev/null 2>&1 || apt_missing+=(etcd-server)
command -v docker-registry >/dev/null 2>&1 || apt_missing+=(docker-registry)
# The Temporal Web UI test drives Debian's Chromium with playwright-core (no browser download).
command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
# The real trainer test's venv (scripts/setup-trainer-venv.sh) needs python3's venv module.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_missing+=(python3-venv)
if [ ${#apt_missing[@]} -gt 0 ]; then
  require apt-get "etcd, docker-registry and chromium come from Debian packages"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  run_logged apt-update $SUDO apt-get update -qq
  run_logged apt-install env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
fi
# The Debian packages start system services bound to default ports; the stack runs its own.
for svc in etcd docker-registry; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" >/dev/null 2>&1 || true
  fi
done
log "etcd $(etcd --version 2>/dev/null | head -n1 | awk '{print $3}'), docker-registry $(docker-registry --version 2>/dev/null | awk '{print $3}')"

# --- Side by side: node packages, the Go builds, and (for tests) the trainer venv ------------
# Each runs in the background with its output in a log, printed when it ends (in_background).
background_pids=()
background_names=()
in_background() {
  local name="$1"; shift
  (
    started=$SECONDS
    "$@" || exit $?
    echo "[setup] $name done in $((SECONDS - started))s"
  ) >"$LOGS/setup-$name.out" 2>&1 &
  background_pids+=("$!")
  background_names+=("$name")
}
# A Go build in the background, saying first how long it takes cold (measured with --stack on 2
# cores, empty Go caches, all builds side by side: temporal 334 s, kwok 239 s, kubernetes 448 s).
go_build() {
  local name="$1" expect="$2"; shift 2
  log "$name: building (cold: $expect; log $LOGS/setup-$name.out)"
  in_background "$name" "$@"
}
# Pure-Go binaries, linked by Go's own linker as Kubernetes releases its own, and no DWARF debug
# information, neither compiled (-dwarf=false: kwok cold 101 s to 88 s) nor linked (-s -w): nobody
# debugs these binaries here, and they run no slower without it.
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -gcflags=all=-dwarf=false"
go_ldflags="-s -w"

if [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
  in_background npm-ci npm ci --prefix "$ROOT" --no-audit --no-fund
else
  log "node_modules up to date"
fi
if [ "$PROFILE" = test ]; then
  # test/real-trainer.test.ts trains the product's entrypoint on CPU with it.
  in_background trainer-venv env TOOLS_DIR="$TOOLS" bash "$ROOT/scripts/setup-trainer-venv.sh"
fi

# --- Temporal CLI (dev server + Web UI) ---------------------------------------------------
if stamp_ok temporal "$TEMPORAL_CLI_VERSION"; then
  log "temporal $TEMPORAL_CLI_VERSION cached"
else
  go_build temporal 'about 335s alongside the others on 2 cores' sh -c "GOBIN='$BIN' go install -trimpath \
    -ldflags '$go_ldflags -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION#v}' \
    'github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION' && echo '$TEMPORAL_CLI_VERSION' > '$BIN/.temporal.version'"
fi

# --- kwok (simulated kubelets) -------------------------------------------------------------
if stamp_ok kwok "$KWOK_VERSION"; then
  log "kwok $KWOK_VERSION cached"
else
  go_build kwok 'about 240s alongside the others on 2 cores' sh -c "GOBIN='$BIN' go install -trimpath -ldflags '$go_ldflags' 'sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION' && echo '$KWOK_VERSION' > '$BIN/.kwok.version'"
fi

# --- Kubernetes control plane (and kubectl, for looking around) ----------------------------
# k8s.io/kubernetes replaces every k8s.io staging module with a local path, so `go install`
# refuses it. A generated wrapper module requires it and replaces each staging module with
# its published v0.x release instead.
k8s_components=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
build_kubernetes() {
  local wrapper="$TOOLS/k8s-wrapper"
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  rm -rf "$wrapper" && mkdir -p "$wrapper" || return 1
  local upstream_mod
  upstream_mod="$(cd "$wrapper" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  [ -f "$upstream_mod" ] || { echo "could not download k8s.io/kubernetes@$KUBERNETES_VERSION's go.mod"; return 1; }
  {
    echo "module localstack/kubernetes"
    echo
    grep -m1 '^go ' "$upstream_mod"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$upstream_mod"
    echo ")"
  } > "$wrapper/go.mod" || return 1
  {
    echo "//go:build tools"
    echo
    echo "// Package tools pins the control-plane commands so go mod tidy resolves their modules."
    echo "package tools"
    echo
    echo "import ("
    for c in "${k8s_components[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ")"
  } > "$wrapper/tools.go"
  # (In the background's `||`, set -e does not apply: each step says when it failed.)
  (cd "$wrapper" && go mod tidy) || return 1
  local minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="$go_ldflags -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  # One go build for all four: their shared packages compile once, and their links run side by side.
  local packages=(); for c in "${k8s_components[@]}"; do packages+=("k8s.io/kubernetes/cmd/$c"); done
  (cd "$wrapper" && go build -trimpath -ldflags "$ldflags" -o "$BIN/" "${packages[@]}") || return 1
  for c in "${k8s_components[@]}"; do stamp "$c" "$KUBERNETES_VERSION"; done
}
k8s_cached=true
for c in "${k8s_components[@]}"; do stamp_ok "$c" "$KUBERNETES_VERSION" || k8s_cached=false; done
if $k8s_cached; then
  log "kubernetes $KUBERNETES_VERSION control plane cached"
else
  go_build kubernetes 'about 450s alongside the others on 2 cores' build_kubernetes
fi

# --- kaito-render (KAITO's own tuning Job, for the comparison test) ------------------------
# A Go program (scripts/kaito-render) that calls KAITO's controller code at the release pinned
# in its go.mod. Rebuilt only when its go.mod, go.sum or source change (the stamp is their hash).
kaito_render_src="$ROOT/scripts/kaito-render"
kaito_render_stamp="$(cat "$kaito_render_src/go.mod" "$kaito_render_src/go.sum" "$kaito_render_src"/*.go | sha256sum | cut -c1-16)"
kaito_version="$(sed -n 's#^[[:space:]]*github.com/kaito-project/kaito \(v[^ ]*\).*#\1#p' "$kaito_render_src/go.mod")"
if [ "$PROFILE" = stack ]; then
  log "kaito-render skipped (--stack: only test/kaito-contract.test.ts uses it)"
elif stamp_ok kaito-render "$kaito_render_stamp"; then
  log "kaito-render (KAITO $kaito_version) cached"
else
  go_build kaito-render 'about 70s alone on 2 cores, longer alongside the others' sh -c "cd '$kaito_render_src' && go build -trimpath -ldflags '$go_ldflags' -o '$BIN/kaito-render' . && echo '$kaito_render_stamp' > '$BIN/.kaito-render.version'"
fi

# --- Waiting for what runs in the background ------------------------------------------------
# Each is reported as it ends; every minute, what is still running, so a first run is seen working.
background_failed=""
waited=$SECONDS
next_report=60
remaining=("${!background_pids[@]}")
while [ ${#remaining[@]} -gt 0 ]; do
  still=()
  for i in "${remaining[@]}"; do
    if kill -0 "${background_pids[$i]}" 2>/dev/null; then still+=("$i"); continue; fi
    if wait "${background_pids[$i]}"; then
      cat "$LOGS/setup-${background_names[$i]}.out" | grep '^\[setup\]' || true
    else
      tail -n 40 "$LOGS/setup-${background_names[$i]}.out" >&2
      background_failed="$background_failed ${background_names[$i]}"
    fi
  done
  remaining=("${still[@]+"${still[@]}"}")
  [ ${#remaining[@]} -gt 0 ] || break
  if [ $((SECONDS - waited)) -ge $next_report ]; then
    names=(); for i in "${remaining[@]}"; do names+=("${background_names[$i]}"); done
    log "still running after $((SECONDS - waited))s: ${names[*]}"
    next_report=$((next_report + 60))
  fi
  sleep 2
done
[ -z "$background_failed" ] || fail "failed:$background_failed (logs in $LOGS)"

log "tools ready in $BIN"
