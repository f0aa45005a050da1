#!/usr/bin/env bash
# Benchmark: a busy device against doorman run, the lab router and the fake
# Telegram server. One device opens 60 shares as fast as upnpc can; doorman
# must send one busy-device message, and Block everything on it must close
# all 60. Prints the messages sent about the device, the time from the first
# share to the busy-device message, and from the Block everything press to
# the last share gone. Needs root, like the lab.
#
#   deploy/lab/bench-burst.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go test -run '^$' -bench 'BenchmarkLabBurst' -benchtime 1x -count 1 ./cmd/doorman
