// Package watcher finds the home router (the Internet Gateway Device) and reads
// the port mappings ("port shares") that devices on the LAN opened on it.
//
// Only the real default gateway is believed: any device on the LAN can answer
// an SSDP search and claim to be the router. Each WAN connection service of the
// gateway is read with the GetGenericPortMappingEntry loop, the one listing
// every IGD supports; see list.go for the end-of-list variants and router
// quirks it copes with.
//
// A Watcher keeps the listings current, one file per part: the Watcher and
// its settings (watch.go, registry.go) hold one gatewayWatch per router
// (gateway_watch.go), which holds one serviceWatch per connection service
// (service_watch.go) that lists at start, on events and on polls. Its GENA
// subscription is kept in subscription.go; the router's NOTIFYs reach the
// callback server of callback.go and are read in events.go. restart.go tells
// router restarts from the SSDP announcements of ssdp_notify.go. A router
// is known by its identity (identity.go: its UDN and host), and
// descriptions of one router are watched once.
// DeleteMapping (delete.go) closes a share and checks that it is gone.
package watcher

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Origin tells which protocol a device used to open a mapping.
type Origin string

const (
	OriginUPnP   Origin = "upnp"
	OriginNATPMP Origin = "nat-pmp"
	OriginPCP    Origin = "pcp"
)

// miniupnpd lists NAT-PMP and PCP mappings in its UPnP table with a
// description it writes itself:
//
//   - NAT-PMP: "NAT-PMP %hu %s", the external port then "tcp" or "udp"
//     (natpmp.c, all versions);
//   - PCP: "PCP %s %08x%08x%08x", the opcode ("MAP" or "PEER") then the
//     client's 96-bit nonce in lowercase hex (pcpserver.c since 1.38, late
//     2014, miniupnpd 1.9 to 2.3.x). A PCP version 1 request carries no
//     nonce and miniupnpd zeroes the request first, so its description
//     ends in 24 zeros;
//   - PCP in miniupnpd 1.8 snapshots (pcpserver.c 1.12, early 2014), kept
//     for router firmware built from them: "PCP %hu %s", like NAT-PMP.
//
// https://github.com/miniupnp/miniupnp/blob/miniupnpd_2_3_1/miniupnpd/natpmp.c
// https://github.com/miniupnp/miniupnp/blob/miniupnpd_2_3_1/miniupnpd/pcpserver.c
//
// The origin is only a hint for the owner, never a basis for a decision: a
// UPnP client chooses its description freely, so a device can write "PCP
// MAP" followed by 24 hex digits in an AddPortMapping and be listed as PCP.
var (
	natpmpDescription = regexp.MustCompile(`^NAT-PMP [0-9]{1,5} (tcp|udp)$`)
	pcpDescription    = regexp.MustCompile(`^PCP ((MAP|PEER) [0-9a-f]{24}|[0-9]{1,5} (tcp|udp))$`)
)

// OriginFromDescription tells the origin of a mapping from its description.
func OriginFromDescription(description string) Origin {
	switch {
	case natpmpDescription.MatchString(description):
		return OriginNATPMP
	case pcpDescription.MatchString(description):
		return OriginPCP
	default:
		return OriginUPnP
	}
}

// Mapping is one port mapping as the router reports it.
type Mapping struct {
	// Router is the identity of the gateway that holds it (Gateway.ID,
	// RouterID), not its description URL, which may move.
	Router string
	// Service is the serviceType of the WAN connection service that listed
	// it; a gateway with two WAN connections has two tables.
	Service        string
	Protocol       string // "TCP" or "UDP"
	ExternalPort   uint16
	RemoteHost     string // empty: any host on the internet
	InternalClient string
	InternalPort   uint16
	Enabled        bool
	Description    string
	// LeaseDuration is what the router reports as left of the lease; 0 means
	// permanent.
	LeaseDuration time.Duration
	Origin        Origin
}

// Key identifies a share on one router: the router's tables are keyed by
// remote host, external port and protocol.
type Key struct {
	Router       string
	Service      string
	Protocol     string
	ExternalPort uint16
	RemoteHost   string
}

// Key returns the identity of the mapping.
func (m Mapping) Key() Key {
	return Key{
		Router:       m.Router,
		Service:      m.Service,
		Protocol:     m.Protocol,
		ExternalPort: m.ExternalPort,
		RemoteHost:   m.RemoteHost,
	}
}

func (k Key) String() string {
	remote := k.RemoteHost
	if remote == "" {
		remote = "*"
	}
	return fmt.Sprintf("%s %d from %s", k.Protocol, k.ExternalPort, remote)
}

// normalizeProtocol returns "TCP" or "UDP", or "" for anything else: routers
// differ in case, and a row with another protocol is not a port share.
func normalizeProtocol(p string) string {
	switch strings.ToUpper(strings.TrimSpace(p)) {
	case "TCP":
		return "TCP"
	case "UDP":
		return "UDP"
	}
	return ""
}
