#!/usr/bin/env bash
# `npm test`: set-up, type-check (sources and tests), then the whole vitest suite.
# Ends with one plain line "tests: N passed, N failed, N skipped" read from vitest's JSON report.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
echo "type-checking (tsc --noEmit)"
npx tsc -p . || exit 1
report=.cache/vitest-report.json
rm -f "$report"
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
code=$?
if [ -f "$report" ]; then
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const skipped = r.numPendingTests + r.numTodoTests;
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
    if (r.numTotalTests === 0) process.exit(1);
  ' "$report" || code=1
else
  echo "tests: 0 passed, 1 failed (vitest wrote no report)"
  code=1
fi
exit $code
