#!/usr/bin/env bash
# Runs every test, layer by layer (unit, then kernel), one file at a time:
# kernel tests share the machine's CPUs, RPS masks and tracepoints. Ends with
# one summary of every skipped test and its reason (test/report/skip-summary.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
# with arguments, only those test files (e.g. dist/test/14-top.test.js)
files=("$@")
((${#files[@]})) || files=(dist/test/*.test.js)
exec node --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=./dist/test/report/skip-summary.js --test-reporter-destination=stdout \
  "${files[@]}"
