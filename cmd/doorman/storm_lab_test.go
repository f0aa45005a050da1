package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/lab"
	"golang.org/x/sys/unix"
)

// TestLabForgedSSDPStorm: SSDP is UDP, and any device on the LAN can write
// the router's address as the source of an announcement. A device sends a
// storm of forged NOTIFYs from raw sockets, with 192.168.77.1 as source and
// the router's UUID: byebye and alive alternating with new BOOTIDs, the
// description URL spelled other ways (":05000", "//", "?x", "[::ffff:…]")
// and moved to a port where nothing is. Doorman must not hammer the router
// (at most one listing per 30 s beyond the polls, counted as connections
// from doorman to the router in the router's namespace) and must not ask
// again about a share it knew.
func TestLabForgedSSDPStorm(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	const shares = 10
	dev1 := l.DeviceIP(1)
	for i := range shares {
		port := strconv.Itoa(21000 + i)
		l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "share "+port, "-a", dev1, port, port, "TCP")
	}
	connections := countConnections(t, l, l.DoormanIP, l.RouterIP)

	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	p := startDoorman(t, l, runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db")))
	waitText(t, tg, 15*time.Second, "already open", "21009")
	// The start settles: subscription, initial event, first listing.
	time.Sleep(3 * time.Second)
	messages := len(tg.Messages())
	before := connections()

	const storm, watch = 20 * time.Second, 35 * time.Second
	start := time.Now()
	sent := sendForgedStorm(t, l, "dev2", storm)
	time.Sleep(time.Until(start.Add(watch)))
	made := connections() - before
	received := strings.Count(p.logs.String(), `msg="SSDP announcement"`)

	// Each listing is one request per share and the end, plus what is in
	// flight past it (listWindow 4); a restart also reads the description
	// (up to 6 tries at a moved URL, then the known one), unsubscribes and
	// subscribes; a check renews, at most every 10 s. In 35 s: two
	// restarts (one at once, one deferred to 30 s later) and one poll,
	// since the byebyes make doorman count its events as lost.
	listing := shares + 1 + 4
	budget := 3*listing + 2*(7+2) + 4 + 5
	t.Logf("forged storm: %d announcements sent in %s (%d reached doorman), %d connections from doorman to the router in %s (budget %d; one listing is %d)",
		sent, storm, received, made, watch, budget, listing)
	if received < sent/10 {
		t.Errorf("only %d of %d forged announcements reached doorman: the storm did not happen", received, sent)
	}
	if made > budget {
		t.Errorf("%d connections to the router during the storm, want at most %d", made, budget)
	}
	for _, m := range tg.Messages()[messages:] {
		if strings.Contains(m.Text, "New port share") || strings.Contains(m.Text, "already open") {
			t.Errorf("doorman asked again during the storm: %q", m.Text)
		}
	}
}

var nftPackets = regexp.MustCompile(`counter packets ([0-9]+)`)

// countConnections counts, in the router's namespace, the TCP connections
// from to dst (SYNs without ACK), and returns a reader of the count.
func countConnections(t *testing.T, l *lab.Lab, from, dst string) func() int {
	t.Helper()
	l.Run(t, "router", "nft", "add", "table", "inet", "dlstorm")
	l.Run(t, "router", "nft", "add", "chain", "inet", "dlstorm", "in", "{", "type", "filter", "hook", "input", "priority", "-150", ";", "}")
	l.Run(t, "router", "nft", "add", "rule", "inet", "dlstorm", "in", "ip", "saddr", from, "ip", "daddr", dst,
		"tcp", "flags", "&", "(syn|ack)", "==", "syn", "counter")
	return func() int {
		out := l.Run(t, "router", "nft", "list", "chain", "inet", "dlstorm", "in")
		m := nftPackets.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no counter in:\n%s", out)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
}

// sendForgedStorm sends forged announcements from device host for d, from
// a raw socket with the router's address as source, to the SSDP multicast
// group on the lab's LAN, and returns how many it sent.
func sendForgedStorm(t *testing.T, l *lab.Lab, host string, d time.Duration) int {
	t.Helper()
	router := netip.MustParseAddr(l.RouterIP).As4()
	usn := "uuid:" + strings.TrimSuffix(strings.TrimPrefix(l.RouterID, "uuid:"), "@"+l.RouterIP)
	locations := []string{
		"http://192.168.77.1:05000/rootDesc.xml",
		"http://192.168.77.1:5000//rootDesc.xml",
		"http://192.168.77.1:5000/rootDesc.xml?x",
		"http://[::ffff:192.168.77.1]:5000/rootDesc.xml",
		"http://192.168.77.1:5000/./rootDesc.xml",
		"http://192.168.77.1:5001/rootDesc.xml",
	}
	sent := 0
	l.InNamespace(t, host, func() error {
		// IPPROTO_RAW: the packet carries its own IP header (IP_HDRINCL),
		// so the source address is the router's.
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		dev := netip.MustParseAddr(l.DeviceIP(2)).As4()
		if err := unix.SetsockoptInet4Addr(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, dev); err != nil {
			return fmt.Errorf("IP_MULTICAST_IF: %w", err)
		}
		group := [4]byte{239, 255, 255, 250}
		end := time.Now().Add(d)
		for i := 0; time.Now().Before(end); i++ {
			var msg string
			if i%2 == 0 {
				msg = fmt.Sprintf("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nUSN: %s::upnp:rootdevice\r\nNTS: ssdp:byebye\r\nBOOTID.UPNP.ORG: %d\r\n\r\n", usn, 100000+i)
			} else {
				msg = fmt.Sprintf("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=120\r\nLOCATION: %s\r\nNT: upnp:rootdevice\r\nUSN: %s::upnp:rootdevice\r\nNTS: ssdp:alive\r\nSERVER: Linux UPnP/1.1 MiniUPnPd/2.3.1\r\nBOOTID.UPNP.ORG: %d\r\n\r\n", locations[(i/2)%len(locations)], usn, 100000+i)
			}
			pkt := forgedUDP(router, group, 1900, 1900, []byte(msg))
			if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: group}); err != nil {
				return fmt.Errorf("sending forged announcement %d: %w", i, err)
			}
			sent++
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	return sent
}

// forgedUDP builds an IPv4 UDP datagram from src to dst; the kernel fills
// in the IP checksum, and a UDP checksum of 0 means none.
func forgedUDP(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	const ipLen, udpLen = 20, 8
	b := make([]byte, ipLen+udpLen+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 4 // TTL: the LAN only
	b[9] = unix.IPPROTO_UDP
	copy(b[12:16], src[:])
	copy(b[16:20], dst[:])
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	binary.BigEndian.PutUint16(b[24:], uint16(udpLen+len(payload)))
	copy(b[28:], payload)
	return b
}
