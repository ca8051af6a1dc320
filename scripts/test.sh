#!/usr/bin/env bash
# Runs every test, layer by layer (unit, then kernel), one file at a time:
# kernel tests share the machine's CPUs, RPS masks and tracepoints.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --test --test-concurrency=1 --test-reporter=spec dist/test/*.test.js
