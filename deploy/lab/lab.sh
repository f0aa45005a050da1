#!/usr/bin/env bash
# A home network in network namespaces, with the real miniupnpd as the router.
#
#   lab.sh up TAG [--igdv1] [--secure] [--debug] [--devices N] [--lease-file]
#   lab.sh down TAG
#   lab.sh exec TAG HOST COMMAND...     HOST: router, doorman, dev1..devN, wan
#   lab.sh restart-router TAG
#   lab.sh move-router TAG PORT         restarts it serving HTTP on PORT
#   lab.sh stop-router TAG | start-router TAG
#   lab.sh env TAG                      prints the lab's facts as KEY=VALUE
#   lab.sh app-start TAG HOST APP DIR   runs a real app on device HOST, its
#                                       state in DIR; APP: transmission,
#                                       syncthing, qbittorrent
#   lab.sh app-stop TAG DIR             stops the app started with DIR
#   lab.sh wan-packets TAG              IPv4 packets that reached the WAN side
#
# TAG is 1 to 6 letters or digits; it makes every name unique so that several
# labs can run at once (go test runs packages in parallel). Needs root.
#
# Layout (see ../../../shared/LAB.md for why each piece is the way it is):
#   dl-TAG-r    router: bridge br0 192.168.77.1/24, wan0 203.0.113.5/24, miniupnpd
#   dl-TAG-w    the WAN side of wan0, 203.0.113.1/24; nothing listens there,
#               and it counts the IPv4 packets that reach it (wan-packets)
#   dl-TAG-h    doorman's host, 192.168.77.10, default route via the router
#   dl-TAG-dN   device N, 192.168.77.(20+N), default route via the router
#   Each host has /etc/netns/NS/resolv.conf naming its own loopback as DNS
#   server, so that doorman's and a real app's lookups stay in the lab
#
# miniupnpd announces EXT_IP to its clients; that address is never contacted,
# and nothing in the lab sends traffic outside the namespaces.
set -euo pipefail

LAN_PREFIX=192.168.77
ROUTER_IP=$LAN_PREFIX.1
DOORMAN_IP=$LAN_PREFIX.10
HTTP_PORT=5000
# miniupnpd 2.3.1 refuses every mapping while its external address is a
# reserved one, so it is told a public-looking one. Announced only.
EXT_IP=100.128.77.5

die() { echo "lab: $*" >&2; exit 1; }

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

check_tag() {
	[[ ${1:-} =~ ^[A-Za-z0-9]{1,6}$ ]] || die "TAG must be 1 to 6 letters or digits, got '${1:-}'"
}

state_dir() { echo "${TMPDIR:-/tmp}/doorman-lab-$1"; }

ns() { echo "dl-$1-$2"; }

host_ns() {
	local tag=$1 host=$2
	case $host in
	router) ns "$tag" r ;;
	wan) ns "$tag" w ;;
	doorman) ns "$tag" h ;;
	dev[0-9]*) ns "$tag" "d${host#dev}" ;;
	*) die "unknown host '$host' (router, doorman, dev1..devN, wan)" ;;
	esac
}

need_tools() {
	local missing=()
	for t in ip nft miniupnpd; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	[ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (apt-get install miniupnpd-nftables miniupnpc natpmpc nftables iproute2)"
	[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
}

# add_host TAG NAME IP: a LAN host namespace on the router's bridge.
add_host() {
	local tag=$1 name=$2 ip=$3
	local hns rns a b
	hns=$(ns "$tag" "$name")
	rns=$(ns "$tag" r)
	a="a${tag}${name}"
	b="b${tag}${name}"
	ip netns add "$hns"
	ip link add "$a" type veth peer name "$b"
	ip link set "$a" netns "$rns"
	ip link set "$b" netns "$hns"
	ip -n "$rns" link set "$a" master br0 up
	ip -n "$hns" link set "$b" name eth0
	ip -n "$hns" addr add "$ip/24" dev eth0
	ip -n "$hns" link set lo up
	ip -n "$hns" link set eth0 up
	ip -n "$hns" route add default via "$ROUTER_IP"
}

# add_resolver NS: ip netns exec bind-mounts /etc/netns/NS/resolv.conf over
# /etc/resolv.conf; without one, a program in the namespace would ask the
# host's resolver, whose address is outside the lab. Loopback answers at once
# with "connection refused", so a lookup fails fast instead of timing out.
add_resolver() {
	mkdir -p "/etc/netns/$1"
	echo "nameserver 127.0.0.1" >"/etc/netns/$1/resolv.conf"
}

# count_wan NS: every IPv4 packet that reaches the WAN side was on its way to
# the internet (nothing in the lab may send there), so a test can check that
# the apps it ran sent nothing out. IPv4 only: no namespace has an IPv6 route
# beyond its links, so an IPv6 packet to the internet fails where it starts.
count_wan() {
	ip netns exec "$1" nft -f - <<'EOF'
table ip lab_wan {
	chain prerouting {
		type filter hook prerouting priority -300; policy accept;
		counter
	}
}
EOF
}

write_nft() {
	cat >"$1" <<'EOF'
table inet filter {
	chain miniupnpd {
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		jump miniupnpd
	}
}
table inet nat {
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		jump postrouting_miniupnpd
	}
}
EOF
}

write_conf() {
	local conf=$1 tag=$2 igdv1=$3 secure=$4 leasefile=$5
	local uuid
	uuid=$(printf '%08x-7777-4000-8000-%012x' "$((16#$(printf '%s' "$tag" | od -An -tx1 | tr -d ' \n' | cut -c1-8)))" "$$")
	cat >"$conf" <<EOF
ext_ifname=wan0
ext_ip=$EXT_IP
listening_ip=br0
http_port=$HTTP_PORT
enable_upnp=yes
enable_natpmp=yes
secure_mode=$secure
system_uptime=yes
notify_interval=30
clean_ruleset_interval=0
uuid=$uuid
friendly_name=Doorman lab router
upnp_table_name=filter
upnp_nat_table_name=nat
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1-65535 $LAN_PREFIX.0/24 1-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
	[ "$igdv1" = yes ] && echo "force_igd_desc_v1=yes" >>"$conf"
	[ "$leasefile" = yes ] && echo "lease_file=$(dirname "$conf")/leases" >>"$conf"
	return 0
}

start_router() {
	local tag=$1 dir rns debug
	dir=$(state_dir "$tag")
	rns=$(ns "$tag" r)
	debug=$(cat "$dir/debug")
	rm -f "$dir/miniupnpd.pid"
	if [ "$debug" = yes ]; then
		# -d keeps it in the foreground and logs every request (slow: see LAB.md).
		ip netns exec "$rns" miniupnpd -f "$dir/miniupnpd.conf" -P "$dir/miniupnpd.pid" -d >>"$dir/miniupnpd.log" 2>&1 &
	else
		ip netns exec "$rns" miniupnpd -f "$dir/miniupnpd.conf" -P "$dir/miniupnpd.pid" >>"$dir/miniupnpd.log" 2>&1
	fi
	wait_router "$tag"
}

wait_router() {
	local tag=$1 hns i port
	hns=$(ns "$tag" h)
	port=$(sed -n 's/^http_port=//p' "$(state_dir "$tag")/miniupnpd.conf")
	for i in $(seq 1 200); do
		if ip netns exec "$hns" bash -c "exec 3<>/dev/tcp/$ROUTER_IP/$port" 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	die "miniupnpd did not answer on $ROUTER_IP:$port within 10 s (log: $(state_dir "$tag")/miniupnpd.log)"
}

stop_router() {
	local tag=$1 dir pid i
	dir=$(state_dir "$tag")
	[ -f "$dir/miniupnpd.pid" ] || return 0
	pid=$(cat "$dir/miniupnpd.pid" 2>/dev/null || true)
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$dir/miniupnpd.pid"; return 0; }
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$dir/miniupnpd.pid"
}

cmd_up() {
	local tag=$1
	shift
	local igdv1=no secure=no debug=no devices=2 leasefile=no
	while [ $# -gt 0 ]; do
		case $1 in
		--igdv1) igdv1=yes ;;
		--secure) secure=yes ;;
		--debug) debug=yes ;;
		--lease-file) leasefile=yes ;;
		--devices) devices=${2:?--devices needs a number}; shift ;;
		*) die "unknown option '$1'" ;;
		esac
		shift
	done
	[[ $devices =~ ^[1-9]$ ]] || die "--devices takes 1 to 9"
	need_tools
	local dir rns wns
	dir=$(state_dir "$tag")
	rns=$(ns "$tag" r)
	wns=$(ns "$tag" w)
	if ip netns list | grep -q "^dl-$tag-"; then
		die "a lab tagged '$tag' exists already; run: $0 down $tag"
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "$debug" >"$dir/debug"
	echo "$devices" >"$dir/devices"
	# Whatever fails from here on leaves nothing behind.
	trap 'cmd_down "$tag" >/dev/null 2>&1 || true' ERR

	ip netns add "$rns"
	ip netns add "$wns"
	ip -n "$rns" link set lo up
	ip -n "$wns" link set lo up
	ip -n "$rns" link add br0 type bridge
	ip -n "$rns" addr add "$ROUTER_IP/24" dev br0
	ip -n "$rns" link set br0 up
	ip link add "w${tag}r" type veth peer name "w${tag}w"
	ip link set "w${tag}r" netns "$rns"
	ip link set "w${tag}w" netns "$wns"
	ip -n "$rns" link set "w${tag}r" name wan0
	ip -n "$rns" addr add 203.0.113.5/24 dev wan0
	ip -n "$rns" link set wan0 up
	ip -n "$wns" addr add 203.0.113.1/24 dev "w${tag}w"
	ip -n "$wns" link set "w${tag}w" up
	ip -n "$rns" route add default via 203.0.113.1
	ip netns exec "$rns" sysctl -qw net.ipv4.ip_forward=1

	add_host "$tag" h "$DOORMAN_IP"
	# doorman's reverse lookups of device names stay in the lab too.
	add_resolver "$(ns "$tag" h)"
	local i
	for i in $(seq 1 "$devices"); do
		add_host "$tag" "d$i" "$LAN_PREFIX.$((20 + i))"
		add_resolver "$(ns "$tag" "d$i")"
	done
	count_wan "$wns"

	write_nft "$dir/tables.nft"
	ip netns exec "$rns" nft -f "$dir/tables.nft"
	write_conf "$dir/miniupnpd.conf" "$tag" "$igdv1" "$secure" "$leasefile"
	start_router "$tag"
	trap - ERR
	cmd_env "$tag"
}

cmd_down() {
	local tag=$1 n pids
	stop_router "$tag"
	for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^dl-$tag-" || true); do
		# Deleting a namespace does not end what runs in it.
		pids=$(ip netns pids "$n" 2>/dev/null || true)
		[ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
		ip netns delete "$n" 2>/dev/null || true
	done
	# With the namespaces, their resolvers (also of a device that failed to
	# be made: the glob needs no namespace).
	rm -rf /etc/netns/dl-"$tag"-*
	rm -rf "$(state_dir "$tag")"
}

cmd_env() {
	local tag=$1 dir
	dir=$(state_dir "$tag")
	[ -d "$dir" ] || die "no lab tagged '$tag'"
	echo "LAB_TAG=$tag"
	echo "LAB_DIR=$dir"
	echo "LAB_ROUTER_IP=$ROUTER_IP"
	echo "LAB_DOORMAN_IP=$DOORMAN_IP"
	echo "LAB_IGD_URL=http://$ROUTER_IP:$HTTP_PORT/rootDesc.xml"
	echo "LAB_ROUTER_UUID=$(sed -n 's/^uuid=//p' "$dir/miniupnpd.conf")"
	echo "LAB_EXT_IP=$EXT_IP"
	echo "LAB_DEVICES=$(cat "$dir/devices")"
	echo "LAB_NS_ROUTER=$(ns "$tag" r)"
	echo "LAB_NS_DOORMAN=$(ns "$tag" h)"
	local i
	for i in $(seq 1 "$(cat "$dir/devices")"); do
		echo "LAB_NS_DEV$i=$(ns "$tag" "d$i")"
		echo "LAB_DEV${i}_IP=$LAN_PREFIX.$((20 + i))"
	done
}

# Real apps on a device (see LAB.md, "Real apps as devices"): Debian's
# packages, each with every internet feature off (DHT, LPD, PeX, global
# discovery, relays, STUN, usage and crash reporting, upgrades), its web UI
# on the device's loopback only, and its whole state in DIR.

write_transmission() {
	local dir=$1
	# PeX and the blocklist have no command-line switch; the rest is also
	# given on the command line, which wins over this file.
	cat >"$dir/settings.json" <<EOF
{
	"dht-enabled": false,
	"lpd-enabled": false,
	"pex-enabled": false,
	"blocklist-enabled": false,
	"port-forwarding-enabled": true,
	"peer-port": 51413,
	"peer-port-random-on-start": false,
	"rpc-bind-address": "127.0.0.1",
	"rpc-whitelist": "127.0.0.1",
	"download-dir": "$dir/downloads",
	"incomplete-dir-enabled": false,
	"watch-dir-enabled": false
}
EOF
}

write_syncthing() {
	local hns=$1 dir=$2
	ip netns exec "$hns" env -i PATH="$PATH" HOME="$dir" STNOUPGRADE=1 \
		syncthing generate --home="$dir" --no-default-folder >>"$dir/app.log" 2>&1
	[ -f "$dir/config.xml" ] || die "syncthing generate wrote no config.xml (log: $dir/app.log)"
	# Local discovery only reaches the LAN, but nothing here needs it.
	sed -i \
		-e 's|<globalAnnounceEnabled>true<|<globalAnnounceEnabled>false<|' \
		-e 's|<globalAnnounceServer>[^<]*<|<globalAnnounceServer><|' \
		-e 's|<localAnnounceEnabled>true<|<localAnnounceEnabled>false<|' \
		-e 's|<relaysEnabled>true<|<relaysEnabled>false<|' \
		-e 's|<startBrowser>true<|<startBrowser>false<|' \
		-e 's|<urAccepted>[^<]*<|<urAccepted>-1<|' \
		-e 's|<urURL>[^<]*<|<urURL><|' \
		-e 's|<autoUpgradeIntervalH>[^<]*<|<autoUpgradeIntervalH>0<|' \
		-e 's|<releasesURL>[^<]*<|<releasesURL><|' \
		-e 's|<crashReportingEnabled>true<|<crashReportingEnabled>false<|' \
		-e 's|<crashReportingURL>[^<]*<|<crashReportingURL><|' \
		-e 's|<stunServer>[^<]*<|<stunServer><|' \
		"$dir/config.xml"
	local want
	for want in '<globalAnnounceEnabled>false<' '<relaysEnabled>false<' '<urAccepted>-1<' \
		'<autoUpgradeIntervalH>0<' '<crashReportingEnabled>false<' '<stunServer><'; do
		grep -qF "$want" "$dir/config.xml" || die "syncthing's config.xml lacks $want after editing: its format changed"
	done
}

write_qbittorrent() {
	local dir=$1
	mkdir -p "$dir/qBittorrent/config"
	# ResolvePeerCountries off: on, qBittorrent downloads a GeoIP database.
	cat >"$dir/qBittorrent/config/qBittorrent.conf" <<EOF
[LegalNotice]
Accepted=true

[BitTorrent]
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\Port=40123
Session\\DefaultSavePath=$dir/downloads

[Preferences]
Connection\\UPnP=true
Connection\\ResolvePeerCountries=false
WebUI\\Enabled=true
WebUI\\Address=127.0.0.1
WebUI\\Port=8080
EOF
}

app_start() {
	local tag=$1 host=$2 app=$3 dir=$4 hns
	[[ $host =~ ^dev[1-9]$ ]] || die "apps run on a device (dev1..devN), not '$host'"
	hns=$(host_ns "$tag" "$host")
	[ -e "/run/netns/$hns" ] || die "no namespace $hns: is the lab up, with enough --devices?"
	[ -d "$dir" ] || die "no state directory '$dir'"
	[ ! -f "$dir/app.pid" ] || die "an app already runs with its state in $dir"
	local cmd
	case $app in
	transmission)
		command -v transmission-daemon >/dev/null || die "missing transmission-daemon (apt-get install transmission-daemon)"
		write_transmission "$dir"
		cmd=(transmission-daemon -f -g "$dir" --portmap --no-dht --no-lpd
			--peerport 51413 --rpc-bind-address 127.0.0.1 --log-info)
		;;
	syncthing)
		command -v syncthing >/dev/null || die "missing syncthing (apt-get install syncthing)"
		write_syncthing "$hns" "$dir"
		cmd=(syncthing serve --home="$dir" --no-browser --no-restart
			--gui-address=127.0.0.1:8384)
		;;
	qbittorrent)
		command -v qbittorrent-nox >/dev/null || die "missing qbittorrent-nox (apt-get install qbittorrent-nox)"
		write_qbittorrent "$dir"
		cmd=(qbittorrent-nox --profile="$dir")
		;;
	*) die "unknown app '$app' (transmission, syncthing, qbittorrent)" ;;
	esac
	# A clean environment: the app reads no settings of whoever runs the
	# tests. ip netns exec and env exec the app, so $! is its pid. Its
	# output goes to the log: lab.sh's caller would otherwise wait for the
	# app to end before it saw lab.sh end.
	ip netns exec "$hns" env -i PATH="$PATH" HOME="$dir" STNOUPGRADE=1 \
		"${cmd[@]}" </dev/null >>"$dir/app.log" 2>&1 &
	echo $! >"$dir/app.pid"
	sleep 0.1
	if ! kill -0 "$(cat "$dir/app.pid")" 2>/dev/null; then
		rm -f "$dir/app.pid"
		die "$app ended at once; its log:
$(tail -n 20 "$dir/app.log")"
	fi
}

# app_stop DIR: TERM first, so that the app closes its shares as it would on
# a real device, then KILL after 10 s.
app_stop() {
	local dir=$1 pid i
	[ -f "$dir/app.pid" ] || return 0
	pid=$(cat "$dir/app.pid")
	if kill "$pid" 2>/dev/null; then
		for i in $(seq 1 200); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/app.pid"
}

main() {
	[ $# -ge 2 ] || usage
	local cmd=$1 tag=$2
	shift 2
	check_tag "$tag"
	case $cmd in
	up) cmd_up "$tag" "$@" ;;
	down) cmd_down "$tag" ;;
	env) cmd_env "$tag" ;;
	exec)
		[ $# -ge 2 ] || usage
		local hns
		hns=$(host_ns "$tag" "$1")
		shift
		exec ip netns exec "$hns" "$@"
		;;
	restart-router)
		stop_router "$tag"
		start_router "$tag"
		;;
	move-router)
		# A router that serves its description on another port after a
		# reboot, as miniupnpd does without a fixed http_port.
		[ $# -eq 1 ] && [[ $1 =~ ^[0-9]{1,5}$ ]] || usage
		stop_router "$tag"
		sed -i "s/^http_port=.*/http_port=$1/" "$(state_dir "$tag")/miniupnpd.conf"
		start_router "$tag"
		;;
	stop-router) stop_router "$tag" ;;
	start-router) start_router "$tag" ;;
	app-start)
		[ $# -eq 3 ] || usage
		app_start "$tag" "$@"
		;;
	app-stop)
		[ $# -eq 1 ] || usage
		app_stop "$1"
		;;
	wan-packets)
		ip netns exec "$(ns "$tag" w)" nft list table ip lab_wan |
			sed -n 's/.*counter packets \([0-9]*\) .*/\1/p'
		;;
	*) usage ;;
	esac
}

main "$@"
