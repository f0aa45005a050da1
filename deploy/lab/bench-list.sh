#!/usr/bin/env bash
# Benchmark: `doorman list` against `upnpc -l` on the lab router holding 320
# port mappings (300 UDP, 20 TCP), the case that crashes miniupnpd 2.3.1's
# GetListOfPortMappings. Runs the two alternately, prints the medians and
# their ratio, and checks that both list all 320, that doorman takes at most
# 1.5 times as long, and that the router still answers afterwards. Then the
# same with discovery: `doorman list` without DOORMAN_IGD_URL against
# `upnpc -l` without -u, both finding the router by SSDP first (target:
# doorman at least 5 times faster, since it goes on as soon as the router
# has answered). Needs root, like the lab.
#
#   deploy/lab/bench-list.sh [RUNS]      (default 15 runs of each)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-15}
lab=deploy/lab/lab.sh
tag=bl$$
tag=${tag:0:6}
work=$(mktemp -d)
cleanup() { "$lab" down "$tag" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/doorman" ./cmd/doorman
# Without --debug: miniupnpd -d logs every rule on every request (LAB.md).
eval "$("$lab" up "$tag" --devices 2)"

echo "adding 300 UDP and 20 TCP mappings..."
"$lab" exec "$tag" dev1 bash -c '
	for p in $(seq 20000 20299); do
		upnpc -u "$1" -e "bench udp $p" -a "$2" "$p" "$p" UDP 86400 >/dev/null || exit 1
	done' _ "$LAB_IGD_URL" "$LAB_DEV1_IP"
"$lab" exec "$tag" dev2 bash -c '
	for p in $(seq 30000 30019); do
		upnpc -u "$1" -e "bench tcp $p" -a "$2" "$p" "$p" TCP 86400 >/dev/null || exit 1
	done' _ "$LAB_IGD_URL" "$LAB_DEV2_IP"

now_ns() { date +%s%N; }
doorman_ms=()
upnpc_ms=()
for i in $(seq 1 "$runs"); do
	t0=$(now_ns)
	n=$("$lab" exec "$tag" doorman env DOORMAN_IGD_URL="$LAB_IGD_URL" "$work/doorman" list --json | grep -c '"external_port"')
	t1=$(now_ns)
	m=$("$lab" exec "$tag" doorman upnpc -u "$LAB_IGD_URL" -l | grep -cE '^ *[0-9]+ (TCP|UDP) ')
	t2=$(now_ns)
	if [ "$n" -ne 320 ] || [ "$m" -ne 320 ]; then
		echo "FAIL: run $i: doorman listed $n, upnpc -l listed $m, want 320 each" >&2
		exit 1
	fi
	doorman_ms+=("$(((t1 - t0) / 1000000))")
	upnpc_ms+=("$(((t2 - t1) / 1000000))")
done

# With discovery: SSDP inside the lab's namespaces only.
disc_doorman_ms=()
disc_upnpc_ms=()
for i in $(seq 1 "$runs"); do
	t0=$(now_ns)
	n=$("$lab" exec "$tag" doorman "$work/doorman" list --json | grep -c '"external_port"')
	t1=$(now_ns)
	m=$("$lab" exec "$tag" doorman upnpc -l | grep -cE '^ *[0-9]+ (TCP|UDP) ')
	t2=$(now_ns)
	if [ "$n" -ne 320 ] || [ "$m" -ne 320 ]; then
		echo "FAIL: discovery run $i: doorman listed $n, upnpc -l listed $m, want 320 each" >&2
		exit 1
	fi
	disc_doorman_ms+=("$(((t1 - t0) / 1000000))")
	disc_upnpc_ms+=("$(((t2 - t1) / 1000000))")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
d=$(median "${doorman_ms[@]}")
u=$(median "${upnpc_ms[@]}")
dd=$(median "${disc_doorman_ms[@]}")
du=$(median "${disc_upnpc_ms[@]}")

# The router must still answer after all that listing.
if ! "$lab" exec "$tag" doorman upnpc -u "$LAB_IGD_URL" -s >/dev/null 2>&1; then
	echo "FAIL: the router no longer answers" >&2
	exit 1
fi

echo "mappings listed:      320 by each, $runs alternating runs"
echo "doorman list median:  ${d} ms"
echo "upnpc -l median:      ${u} ms"
awk -v d="$d" -v u="$u" 'BEGIN { printf "ratio doorman/upnpc:  %.2f (floor <= 1.50)\n", d / u }'
echo "with discovery (SSDP, then the listing):"
echo "doorman list median:  ${dd} ms"
echo "upnpc -l median:      ${du} ms"
awk -v d="$dd" -v u="$du" 'BEGIN { printf "ratio upnpc/doorman:  %.2f (target >= 5.00)\n", u / d }'
echo "router still answers: yes"
ok=0
awk -v d="$d" -v u="$u" 'BEGIN { exit (d <= 1.5 * u ? 0 : 1) }' || { echo "FAIL: doorman list takes more than 1.5 times as long as upnpc -l" >&2; ok=1; }
awk -v d="$dd" -v u="$du" 'BEGIN { exit (5 * d <= u ? 0 : 1) }' || { echo "FAIL: doorman list with discovery is not 5 times faster than upnpc -l" >&2; ok=1; }
exit "$ok"
