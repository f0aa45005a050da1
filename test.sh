#!/usr/bin/env bash
# Runs doorman's whole test suite, the end-to-end tests against the real
# miniupnpd included, on a Debian or Ubuntu machine with Go.
#
# It installs what the tests need when it is missing (miniupnpd-nftables,
# miniupnpc, natpmpc, nftables, iproute2) and must run as root, or with sudo
# available, for the network namespaces of the lab. Extra arguments go to
# `go test`, e.g. ./test.sh -run TestLab -v
set -euo pipefail
cd "$(dirname "$0")"

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "test.sh: need root to run: $*" >&2
		return 1
	fi
}

missing=()
for tool in miniupnpd:miniupnpd-nftables upnpc:miniupnpc natpmpc:natpmpc nft:nftables ip:iproute2; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "test.sh: installing ${missing[*]}" >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:/sbin"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...

if [ "$(id -u)" -eq 0 ]; then
	go test -race -count=1 "$@" ./...
else
	# The lab needs root; the binary runs as root, the build as you.
	go test -race -count=1 -exec sudo "$@" ./...
fi
