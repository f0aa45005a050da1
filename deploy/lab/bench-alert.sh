#!/usr/bin/env bash
# Benchmark: how fast doorman run alerts and blocks, against the lab router
# and the fake Telegram server. For each mode (router events; polling every
# 5 s with events off) a device adds 9 mappings one after another; the time
# from upnpc returning to the alert reaching Telegram is measured, and for
# every third alert the time from the Block press to the alert saying the
# share is closed (doorman says so only after the router confirmed it gone).
# Prints the medians. Needs root, like the lab.
#
#   deploy/lab/bench-alert.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go test -run '^$' -bench 'BenchmarkLabAlert' -benchtime 1x -count 1 ./cmd/doorman
