#!/usr/bin/env bash
# `npm test`: set-up, type-check (TypeScript sources and tests, Python package with mypy --strict),
# the vitest suite, then the Python suites (spark-udfs: local Spark + Iceberg against the real API;
# stream-consumer: the Kinesis source against moto).
# Ends with one plain line "tests: N passed, N failed, N skipped" over both suites.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
echo "type-checking (tsc --noEmit, mypy --strict)"
npx tsc -p . || exit 1
(cd spark-udfs && ../.venv/bin/mypy) || exit 1
(cd stream-consumer && ../.venv/bin/mypy) || exit 1
vitest_report=.cache/vitest-report.json
pytest_reports=(.cache/pytest-spark-udfs.xml .cache/pytest-stream-consumer.xml)
rm -f "$vitest_report" "${pytest_reports[@]}"
npx vitest run --reporter=default --reporter=json --outputFile.json="$vitest_report" "$@"
code=$?
# Two invocations: each package has its own tests/ package and conftest.
for package in spark-udfs stream-consumer; do
  .venv/bin/python -m pytest "$package/tests" -q -p no:cacheprovider --junitxml=".cache/pytest-$package.xml"
  pytest_code=$?
  [ $pytest_code -ne 0 ] && code=$pytest_code
done
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
