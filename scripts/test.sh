#!/usr/bin/env bash
# Runs the formatter's check (Prettier, .prettierrc.json), the linter (ESLint,
# typescript-eslint's recommended rules) and every
# test, folder by folder (test/unit: no kernel, a folder per layer; test/kernel: this host's
# kernel; test/vm: Debian kernels under QEMU; test/fleet: the package and the
# image), one file at a time: kernel tests share the machine's CPUs, RPS
# masks and tracepoints. Ends with one summary of
# every skipped test and its reason (test/report/skip-summary.ts).
#   scripts/test.sh                          format check and lint, then every test
#   scripts/test.sh dist/test/kernel/14-top.test.js   only those test files (no lint)
set -uo pipefail
cd "$(dirname "$0")/.."
lint=0
tests=0
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
# one node --test run per folder, in this order (a run sorts its files by path)
run() {
  JITTERSCOPE_SKIP_FILE=$summary node --test --test-concurrency=1 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=./dist/test/report/skip-summary.js --test-reporter-destination=stdout \
    "$@" || tests=1
}
if (($# == 0)); then
  echo "lint: prettier --check, eslint ." >&2
  npx --no-install prettier --check --log-level warn '**/*.{ts,js,mjs}' || { echo "lint: not formatted (above): npx prettier --write '**/*.{ts,js,mjs}'" >&2; lint=1; }
  npx --no-install eslint . || lint=1
  for dir in unit kernel vm fleet; do
    # test/unit has a folder per layer (stream, diagnose, report, ...); the others are flat
    mapfile -t files < <(find "dist/test/$dir" -name '*.test.js' 2>/dev/null | sort)
    ((${#files[@]})) && run "${files[@]}"
  done
else
  run "$@"
fi
awk -F'\t' '$1 == "COUNT" { p += $2; f += $3 } $1 == "SKIP" { s[++n] = $2 }
  END { printf "\nSkipped tests: %d (passed %d, failed %d)\n", n, p, f; for (i = 1; i <= n; i++) print s[i] }' "$summary"
((lint)) && echo "lint: prettier or eslint found problems (above): npm test fails" >&2
((tests || lint)) && exit 1
exit 0
