#!/usr/bin/env bash
# Runs doorman's whole test suite, the end-to-end tests against the real
# miniupnpd included, on a Debian or Ubuntu machine with Go.
#
# It installs what the tests need when it is missing (miniupnpd-nftables,
# miniupnpc, natpmpc, nftables, iproute2, systemd for systemd-analyze, make,
# ieee-data, the MAC vendor registry the embedded table is checked against,
# and the real apps the lab runs as devices: transmission-daemon, syncthing,
# qbittorrent-nox)
# and must run as root, or with sudo available, for the network namespaces
# of the lab. Before the tests it checks gofmt, go vet, go mod tidy -diff,
# staticcheck and deadcode -test (installing the last two, pinned, with go
# install). After the tests it runs every fuzz target briefly (FUZZTIME,
# default 20000 inputs each), then builds the release binaries (make
# release) and fails if they are too big. Extra arguments go to `go test`, e.g.
# ./test.sh -run TestLab -v
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
for tool in miniupnpd:miniupnpd-nftables upnpc:miniupnpc natpmpc:natpmpc nft:nftables ip:iproute2 systemd-analyze:systemd make:make \
	transmission-daemon:transmission-daemon syncthing:syncthing qbittorrent-nox:qbittorrent-nox; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool#*:}")
done
[ -f /usr/share/ieee-data/oui.txt ] || missing+=(ieee-data)
if [ ${#missing[@]} -gt 0 ]; then
	echo "test.sh: installing ${missing[*]}" >&2
	# transmission-daemon's package enables and starts a system service on
	# install, with DHT and PeX on (Debian's /etc/transmission-daemon): on
	# a CI machine with systemd it would contact DHT nodes on the internet.
	# A policy-rc.d that refuses (exit 101) stops invoke-rc.d and
	# deb-systemd-invoke from starting anything during the install, and the
	# service is disabled after, so that no boot starts it either. The lab
	# runs its own copy in a namespace, every internet feature off.
	policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		as_root sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
		policy=added
	fi
	status=0
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
	[ $status -ne 0 ] || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
	[ -z "$policy" ] || as_root rm -f /usr/sbin/policy-rc.d
	[ $status -eq 0 ] || exit $status
	if [[ " ${missing[*]} " == *" transmission-daemon "* ]] && command -v systemctl >/dev/null 2>&1; then
		as_root systemctl disable transmission-daemon.service >/dev/null 2>&1 || true
		[ ! -d /run/systemd/system ] || as_root systemctl stop transmission-daemon.service || true
	fi
fi
export PATH="$PATH:/usr/sbin:/sbin"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...

# The module is tidy, and staticcheck and deadcode (tests count as callers)
# find nothing. The tools are pinned and installed with go install, into
# GOBIN or $(go env GOPATH)/bin, when that version is not there yet.
if ! go mod tidy -diff >/dev/null; then
	go mod tidy -diff >&2 || true
	echo "test.sh: go.mod or go.sum is not tidy: run go mod tidy" >&2
	exit 1
fi
gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin=$(go env GOPATH)/bin
for tool in honnef.co/go/tools/cmd/staticcheck@v0.8.2 golang.org/x/tools/cmd/deadcode@v0.52.0; do
	bin=$gobin/$(basename "${tool%@*}")
	# The version asked for, built by this Go: an older Go's build may not
	# read the module's code.
	mod=$(go version -m "$bin" 2>/dev/null | awk '$1 == "mod" { print $3 }' || true)
	built=$(go version "$bin" 2>/dev/null | awk '{ print $2 }' || true)
	if [ "$mod" != "${tool#*@}" ] || [ "$built" != "$(go env GOVERSION)" ]; then
		echo "test.sh: installing $tool" >&2
		go install "$tool"
	fi
done
"$gobin/staticcheck" ./...
dead=$("$gobin/deadcode" -test ./...)
if [ -n "$dead" ]; then
	echo "$dead" >&2
	echo "test.sh: deadcode -test found unreachable functions" >&2
	exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
	go test -race -count=1 "$@" ./...
else
	# The lab needs root; the binary runs as root, the build as you.
	go test -race -count=1 -exec sudo "$@" ./...
fi

# Every parser of router, LAN and chat input has a fuzz target; each runs
# briefly on top of its checked-in seeds. A count rather than a time: with
# a time, go test reports "context deadline exceeded" as a failure when the
# time runs out while it still gathers coverage. New interesting inputs are
# not minimized for long: that alone can take minutes on big router files.
if [ $# -eq 0 ]; then
	for file in $(grep -l '^func Fuzz' $(git ls-files '*_test.go' 2>/dev/null || find . -name '*_test.go')); do
		for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
			echo "test.sh: fuzzing $target in $(dirname "$file") for ${FUZZTIME:-20000x}" >&2
			if ! out=$(go test -run '^$' -fuzz "^$target\$" -fuzztime "${FUZZTIME:-20000x}" -fuzzminimizetime 100x "./$(dirname "$file")" 2>&1); then
				echo "$out" | grep -v '^fuzz: elapsed' >&2
				exit 1
			fi
		done
	done
fi

# The release binaries: static, for every platform, stamped with the
# commit, and the arm64 one under 20 MiB (a Raspberry Pi's).
make --no-print-directory release >/dev/null
commit=$(git rev-parse HEAD 2>/dev/null || true)
for pair in amd64:amd64 arm64:arm64 armv7:arm:GOARM=7 mipsle:mipsle:GOMIPS=softfloat; do
	name=${pair%%:*} rest=${pair#*:}
	arch=${rest%%:*} extra=${rest#"$arch"}
	bin=dist/doorman-linux-$name
	size=$(stat -c %s "$bin")
	awk -v b="$bin" -v s="$size" 'BEGIN { printf "test.sh: %-26s %9d bytes (%.1f MiB)\n", b, s, s / 1048576 }' >&2
	# -trimpath keeps -ldflags out of the build info; the commit is in the
	# binary's data instead.
	info=$(go version -m "$bin")
	for want in "GOARCH=$arch" CGO_ENABLED=0 -trimpath=true ${extra#:}; do
		if ! grep -qF -- "$want" <<<"$info"; then
			echo "test.sh: $bin was not built with $want" >&2
			exit 1
		fi
	done
	if [ -n "$commit" ] && ! grep -qaF "$commit" "$bin"; then
		echo "test.sh: $bin does not hold the commit $commit" >&2
		exit 1
	fi
	if [ "$name" = arm64 ] && [ "$size" -ge $((20 * 1024 * 1024)) ]; then
		echo "test.sh: $bin is $size bytes, 20 MiB or more" >&2
		exit 1
	fi
done
if [ "$(go env GOHOSTOS)/$(go env GOHOSTARCH)" = linux/amd64 ]; then
	out=$(dist/doorman-linux-amd64 version)
	echo "test.sh: $out" >&2
	if [ -n "$commit" ] && [[ "$out" != *"commit $commit"* ]]; then
		echo "test.sh: doorman version does not give the commit $commit" >&2
		exit 1
	fi
fi
