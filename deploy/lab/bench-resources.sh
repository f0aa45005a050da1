#!/usr/bin/env bash
# Benchmark: doorman run's memory and idle CPU with 1,000 port mappings on
# the lab router (real miniupnpd) and the fake Telegram server. Prints the
# RSS after the first listing and report, the peak, and the CPU used over an
# idle minute (BENCH_IDLE=30s changes that). Needs root, like the lab.
#
#   deploy/lab/bench-resources.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go test -run '^$' -bench 'BenchmarkLabResources' -benchtime 1x -count 1 -timeout 20m ./cmd/doorman
