#!/usr/bin/env bash
# Runs the linter (ESLint, typescript-eslint's recommended rules) and every
# test, folder by folder (test/unit: no kernel; test/kernel: this host's
# kernel; test/vm: Debian kernels under QEMU; test/fleet: the package and the
# image), one file at a time: kernel tests share the machine's CPUs, RPS
# masks and tracepoints. Ends with one summary of
# every skipped test and its reason (test/report/skip-summary.ts).
#   scripts/test.sh                          lint, then every test
#   scripts/test.sh dist/test/kernel/14-top.test.js   only those test files (no lint)
set -uo pipefail
cd "$(dirname "$0")/.."
lint=0
files=("$@")
if ((${#files[@]} == 0)); then
  files=(dist/test/unit/*.test.js dist/test/kernel/*.test.js dist/test/vm/*.test.js dist/test/fleet/*.test.js)
  echo "lint: eslint ." >&2
  npx --no-install eslint . || lint=1
fi
node --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=./dist/test/report/skip-summary.js --test-reporter-destination=stdout \
  "${files[@]}"
tests=$?
((lint)) && echo "lint: eslint found problems (above): npm test fails" >&2
((tests || lint)) && exit 1
exit 0
