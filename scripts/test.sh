#!/usr/bin/env bash
# `npm test`: set-up, type-check and lint (tsc and typescript-eslint over sources and tests; mypy --strict and
# ruff check + format over the Python packages and test support),
# the vitest suite and the Python suites (spark-udfs: local Spark + Iceberg against the real API;
# stream-consumer: the Kinesis source against moto).
# The suites run in two lanes side by side (see below); each one's output is printed when it ends, and a table
# of durations comes before the last line, one plain line "tests: N passed, N failed, N skipped" over all suites.
set -uo pipefail
usage() {
  cat <<'EOF'
usage: npm test [-- FILTER...]   (or bash scripts/test.sh [FILTER...])

Runs, in order: npm run setup (venv, jars, Debian packages the tests use); tsc and eslint; mypy --strict and
ruff over the Python packages, test support and development scripts; npm run build; then the suites in two
lanes side by side: vitest then pytest spark-udfs, and pytest stream-consumer then the spark-udfs maintenance
and re-keying jobs. Each suite's log goes to .cache/test-logs/; a table of durations and one line
"tests: N passed, N failed, N skipped" end it. FILTER (file paths or parts of them) narrows the vitest suite
only; the Python suites always run whole. Takes tens of minutes.

exit status: 0 every suite passed, 1 a check or suite failed, 2 usage error

examples:
  npm test
  npm test -- test/erasure/ledgerStartup.test.ts
EOF
}
for argument in "$@"; do
  case "$argument" in
    -h | --help) usage; exit 0 ;;
    -*) echo "test: unknown option (FILTER arguments are vitest file filters; options are not passed on)" >&2; usage >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
run_started=$SECONDS
echo "type-checking and linting (tsc --noEmit, eslint type-aware, mypy --strict, ruff)"
npx tsc -p . || exit 1
npx eslint --max-warnings 0 . || exit 1
(cd spark-udfs && ../.venv/bin/mypy) || exit 1
(cd stream-consumer && ../.venv/bin/mypy) || exit 1
.venv/bin/mypy --config-file test/python/mypy.ini || exit 1
for package in spark-udfs stream-consumer; do
  (cd "$package" && ../.venv/bin/ruff check . && ../.venv/bin/ruff format --check .) || exit 1
done
(cd test/python && ../../.venv/bin/ruff check . && ../../.venv/bin/ruff format --check .) || exit 1
# The local stack and the examples' data generator: development scripts outside the packages, the same checks.
dev_python=(scripts/local-stack.py examples/make_vehicles.py)
.venv/bin/mypy --strict --ignore-missing-imports "${dev_python[@]}" || exit 1
(.venv/bin/ruff check --config test/python/ruff.toml "${dev_python[@]}" && .venv/bin/ruff format --check --config test/python/ruff.toml "${dev_python[@]}") || exit 1
# The benchmarks and the AWS sample's client (a test fixture): ruff's lint and format (mypy covers the above).
linted_python=(load-tests/*.py test/fixtures/aws_sample_client.py)
(.venv/bin/ruff check --config test/python/ruff.toml "${linted_python[@]}" && .venv/bin/ruff format --check --config test/python/ruff.toml "${linted_python[@]}") || exit 1
vitest_report=.cache/vitest-report.json
pytest_reports=(.cache/pytest-spark-udfs.xml .cache/pytest-stream-consumer.xml .cache/pytest-spark-udfs-jobs.xml)
logs=.cache/test-logs
timings=$logs/durations.tsv
rm -rf "$vitest_report" "${pytest_reports[@]}" "$logs"
mkdir -p "$logs"
# One build of dist/ before the suites start side by side: vitest's global set-up would otherwise rewrite it
# while the Python suites start the API from it.
node_modules/.bin/tsx scripts/build.ts > /dev/null || exit 1
export PSEUDO_TEST_DIST_BUILT=1
printf '%s\t%s\t%s\n' "type-checks, lint, build" $((SECONDS - run_started)) 0 >> "$timings"

# Runs one suite into its own log, then prints the log (one at a time: suites end while others run) and
# records the duration. Returns the suite's exit code.
suite() {
  local name=$1 started=$SECONDS code log="$logs/${1// /-}.log"
  shift
  "$@" > "$log" 2>&1
  code=$?
  flock "$logs/.print" sh -c 'echo "=== $1: $2 s, exit $3"; cat "$4"' _ "$name" $((SECONDS - started)) "$code" "$log"
  printf '%s\t%s\t%s\n' "$name" $((SECONDS - started)) "$code" >> "$timings"
  return "$code"
}

# Two lanes for two cores of about equal work: vitest then spark-udfs in one; stream-consumer then the
# spark-udfs maintenance and re-keying jobs' tests in the other. At most two Spark drivers run at once (the
# streaming suite mostly waits on triggers and on its job processes). Separate pytest invocations: each package
# has its own tests/ package and conftest. Each suite's temporary files (tables, checkpoints, job logs) in a
# folder of its own, kept until its next run. pytest_suite NAME PATH... (NAME names the log, report and folder).
jobs_tests=(spark-udfs/tests/test_maintenance.py spark-udfs/tests/test_rekey.py spark-udfs/tests/test_rekey_legacy.py)
pytest_suite() {
  local name=$1
  shift
  suite "pytest $name" .venv/bin/python -m pytest "$@" -q -p no:cacheprovider --junitxml=".cache/pytest-$name.xml" \
    --basetemp="${TMPDIR:-/tmp}/pytest-$name"
}
echo "running the suites in two lanes: vitest then spark-udfs, and stream-consumer then spark-udfs-jobs (logs in $logs/)"
(
  suite vitest npx vitest run --reporter=default --reporter=json --outputFile.json="$vitest_report" "$@"
  first=$?
  pytest_suite spark-udfs spark-udfs/tests "${jobs_tests[@]/#/--ignore=}" && exit $first
) &
first_lane=$!
(
  pytest_suite stream-consumer stream-consumer/tests
  first=$?
  pytest_suite spark-udfs-jobs "${jobs_tests[@]}" && exit $first
) &
second_lane=$!
code=0
wait $first_lane || code=1
wait $second_lane || code=1
printf '%s\t%s\t%s\n' "total (wall clock)" $((SECONDS - run_started)) "$code" >> "$timings"
echo
awk -F '\t' '{ printf "%-26s %6d s  %s\n", $1, $2, ($3 == 0 ? "ok" : "FAILED") }' "$timings"
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0;
  if (fs.existsSync(process.argv[1])) {
    const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
  } else failed += 1;
  for (const report of process.argv.slice(2)) {
    if (!fs.existsSync(report)) { failed += 1; continue; }
    const xml = fs.readFileSync(report, "utf8");
    const n = (name) => Number((new RegExp(`<testsuite[^>]* ${name}="(\\d+)"`).exec(xml) || [0, 0])[1]);
    const total = n("tests"), bad = n("failures") + n("errors"), skip = n("skipped");
    passed += total - bad - skip; failed += bad; skipped += skip;
  }
  console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  if (passed === 0 || failed > 0) process.exit(1);
' "$vitest_report" "${pytest_reports[@]}" || code=1
exit $code
