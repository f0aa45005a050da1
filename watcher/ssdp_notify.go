package watcher

// SSDP announcements (UPnP Device Architecture 1.1, 1.2): a router
// multicasts ssdp:alive when it starts and again every so often, and
// ssdp:byebye when it stops cleanly. Doorman listens to them to notice router
// restarts: a restarted router has forgotten every event subscription, and
// its mappings may have changed while it was down.
//
// Router quirks handled here:
//   - UDA 1.1 routers send BOOTID.UPNP.ORG, which changes with every boot
//     (miniupnpd 2.3.1 uses its start time in seconds); UDA 1.0 routers send
//     none, and for them an alive is only a reason to check the event
//     subscriptions (see restartDetector in restart.go);
//   - miniupnpd announces every device and service type (13 messages for
//     the lab's IGDv2) and repeats the burst 250 ms later; the periodic
//     alives (notify_interval, 30 s in the lab, 900 s by default) carry the
//     same BOOTID and mean nothing;
//   - some routers make up a new UUID at every boot, so an alive is matched
//     by its LOCATION as well as by the UDNs of the description.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
)

const (
	ssdpPort = 1900
	// maxSSDPBytes is more than any announcement needs (miniupnpd's are
	// about 400 bytes).
	maxSSDPBytes = 8 << 10
)

// ssdpMessage is one NOTIFY * announcement, its fields cleaned.
type ssdpMessage struct {
	NTS        string // "ssdp:alive", "ssdp:byebye" or "ssdp:update", lower case
	NT         string
	USN        string
	Location   string
	BootID     string
	NextBootID string
}

// uuid returns the "uuid:…" part of the USN, lower case.
func (m ssdpMessage) uuid() string {
	u, _, _ := strings.Cut(m.USN, "::")
	return strings.ToLower(strings.TrimSpace(u))
}

var errNotNotify = errors.New("not an SSDP NOTIFY")

// parseSSDPNotify reads a datagram received on the SSDP port. Searches
// (M-SEARCH) from other hosts arrive there too and are errNotNotify.
func parseSSDPNotify(b []byte) (ssdpMessage, error) {
	if len(b) > maxSSDPBytes {
		return ssdpMessage{}, fmt.Errorf("SSDP message of %d bytes", len(b))
	}
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
	line, err := tp.ReadLine()
	if err != nil {
		return ssdpMessage{}, fmt.Errorf("SSDP message: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "NOTIFY" || f[1] != "*" || !strings.HasPrefix(f[2], "HTTP/1.") {
		return ssdpMessage{}, errNotNotify
	}
	// Some stacks leave out the blank line that ends the headers.
	h, err := tp.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return ssdpMessage{}, fmt.Errorf("SSDP headers: %w", err)
	}
	get := func(k string) string { return cleanText(strings.TrimSpace(h.Get(k)), 256) }
	m := ssdpMessage{
		NTS:        strings.ToLower(get("NTS")),
		NT:         get("NT"),
		USN:        get("USN"),
		Location:   get("LOCATION"),
		BootID:     get("BOOTID.UPNP.ORG"),
		NextBootID: get("NEXTBOOTID.UPNP.ORG"),
	}
	switch m.NTS {
	case "ssdp:alive", "ssdp:byebye", "ssdp:update":
	default:
		return ssdpMessage{}, fmt.Errorf("SSDP NOTIFY with NTS %q", m.NTS)
	}
	if m.USN == "" {
		return ssdpMessage{}, errors.New("SSDP NOTIFY without USN")
	}
	return m, nil
}

// listenSSDPMulticast joins the SSDP group on the interface that holds
// local, doorman's own address towards the router.
//
// The socket listens on port 1900 of every address (SO_REUSEADDR, so that a
// local SSDP daemon and several watchers can share it), which also brings
// unicast datagrams and the announcements of every device on the LAN: the
// caller keeps only the router's.
func listenSSDPMulticast(local netip.Addr) (net.PacketConn, error) {
	if !local.Is4() || local.IsLoopback() {
		return nil, fmt.Errorf("watcher: no SSDP multicast on %s", local)
	}
	ifi, err := interfaceWithAddr(local)
	if err != nil {
		return nil, err
	}
	group := &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: ssdpPort}
	conn, err := net.ListenMulticastUDP("udp4", ifi, group)
	if err != nil {
		return nil, fmt.Errorf("watcher: unable to join the SSDP multicast group on %s: %w", ifi.Name, err)
	}
	return conn, nil
}

// interfaceWithAddr finds the network interface that holds addr.
func interfaceWithAddr(addr netip.Addr) (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("watcher: unable to list network interfaces: %w", err)
	}
	for i := range ifs {
		addrs, err := ifs[i].Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap() == addr {
					return &ifs[i], nil
				}
			}
		}
	}
	return nil, fmt.Errorf("watcher: no network interface has the address %s", addr)
}
