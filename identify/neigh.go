package identify

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	// neighbourMaxAge is how long a reading of the neighbour table is
	// reused: reading it is cheap, but a flood of shares should not read it
	// a thousand times a second.
	neighbourMaxAge = 2 * time.Second
	// probeInterval limits probes to one per address per minute: a device
	// that does not answer ARP must not cost every alert the wait.
	probeInterval = time.Minute
	// probeWait is how long Device waits for the kernel to learn a MAC
	// after a probe; a device on the LAN answers ARP within milliseconds,
	// a sleeping phone may take longer or not at all.
	probeWait = 500 * time.Millisecond
	// probePoll is how often the table is re-read while waiting.
	probePoll = 20 * time.Millisecond
	// maxNeighbourBytes bounds one reading of the table: the kernel keeps
	// at most a few thousand entries (gc_thresh3) of about 80 bytes.
	maxNeighbourBytes = 4 << 20
	// maxProbed bounds the memory of which addresses were probed.
	maxProbed = 4096
)

// Linux neighbour flags as /proc/net/arp shows them (ATF_* in
// include/uapi/linux/if_arp.h).
const atfComplete = 0x02

// parseNeighbours reads the kernel's IPv4 neighbour table in the
// /proc/net/arp form:
//
//	IP address       HW type     Flags       HW address            Mask     Device
//	192.168.178.20   0x1         0x2         3c:22:fb:12:34:56     *        eth0
//
// Incomplete entries (no ATF_COM flag: the kernel asked and got no answer
// yet or ever), entries without a real unicast MAC and lines it does not
// understand are skipped. An address listed with two different MACs (two
// interfaces on overlapping networks, or someone answering ARP for another
// device) is left out: either MAC would be a guess, and a trust rule that
// follows a MAC must not follow the wrong one.
func parseNeighbours(r io.Reader) (map[netip.Addr][6]byte, error) {
	table := make(map[netip.Addr][6]byte)
	conflict := make(map[netip.Addr]bool)
	sc := bufio.NewScanner(io.LimitReader(r, maxNeighbourBytes))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil || !ip.Is4() {
			continue // the header, or garbage
		}
		flags, err := strconv.ParseUint(f[2], 0, 32)
		if err != nil || flags&atfComplete == 0 {
			continue
		}
		mac, ok := parseMAC(f[3])
		if !ok || !unicastMAC(mac) {
			continue
		}
		if conflict[ip] {
			continue
		}
		if old, ok := table[ip]; ok && old != mac {
			delete(table, ip)
			conflict[ip] = true
			continue
		}
		table[ip] = mac
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read neighbour table: %w", err)
	}
	return table, nil
}

// parseMAC reads a 48-bit MAC address written as six pairs of hex digits
// separated by ':' or '-'.
func parseMAC(s string) ([6]byte, bool) {
	var mac [6]byte
	if len(s) != 17 {
		return mac, false
	}
	for i := range 6 {
		if i > 0 && s[3*i-1] != ':' && s[3*i-1] != '-' {
			return mac, false
		}
		v, err := strconv.ParseUint(s[3*i:3*i+2], 16, 8)
		if err != nil {
			return mac, false
		}
		mac[i] = byte(v)
	}
	return mac, true
}

// unicastMAC rejects the all-zero address (what the kernel shows for
// entries it never resolved) and group addresses (the I/G bit, broadcast
// included), which no single device owns.
func unicastMAC(mac [6]byte) bool {
	return mac != [6]byte{} && mac[0]&0x01 == 0
}

func formatMAC(mac [6]byte) string {
	return net.HardwareAddr(mac[:]).String()
}

// neighbour returns the MAC the kernel knows for ip. fresh forces a new
// reading of the table, for polling after a probe.
func (id *Identifier) neighbour(ip netip.Addr, fresh bool) ([6]byte, bool) {
	id.neighMu.Lock()
	defer id.neighMu.Unlock()
	now := id.now()
	if fresh || id.neighReadAt.IsZero() || now.Sub(id.neighReadAt) >= neighbourMaxAge || now.Before(id.neighReadAt) {
		id.neighReadAt = now
		table, err := readNeighbours(id.neighFile)
		if err != nil {
			// Not Linux, or /proc not mounted: MACs stay unknown.
			// Said once, not for every share.
			if !id.neighWarned {
				id.neighWarned = true
				id.log.Debug("identify: no neighbour table, MAC addresses stay unknown", "err", err)
			}
			table = nil
		}
		id.neighTable = table
	}
	mac, ok := id.neighTable[ip]
	return mac, ok
}

func readNeighbours(name string) (map[netip.Addr][6]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open neighbour table: %w", err)
	}
	defer f.Close()
	return parseNeighbours(f)
}

// lookupMAC finds the MAC of ip: in the neighbour table, among this
// machine's own interfaces (the NAS that runs doorman may run Plex too),
// or, when the kernel has not talked to the device lately, by probing it
// and waiting for the kernel to learn it, until ctx ends or probeWait.
func (id *Identifier) lookupMAC(ctx context.Context, ip netip.Addr) ([6]byte, bool) {
	if !ip.Is4() {
		return [6]byte{}, false
	}
	if mac, ok := id.neighbour(ip, false); ok {
		return mac, true
	}
	if mac, ok := id.localMAC(ip); ok {
		return mac, true
	}
	if !id.mayProbe(ip) || !id.probe(ctx, ip) {
		return [6]byte{}, false
	}
	limit := time.NewTimer(probeWait)
	defer limit.Stop()
	tick := time.NewTicker(probePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return [6]byte{}, false
		case <-limit.C:
			return [6]byte{}, false
		case <-tick.C:
			if mac, ok := id.neighbour(ip, true); ok {
				return mac, true
			}
		}
	}
}

// mayProbe records a probe of ip unless one was sent within probeInterval.
func (id *Identifier) mayProbe(ip netip.Addr) bool {
	id.mu.Lock()
	defer id.mu.Unlock()
	now := id.now()
	if last, ok := id.probed[ip]; ok && now.Sub(last) < probeInterval && !now.Before(last) {
		return false
	}
	if len(id.probed) >= maxProbed {
		for a, t := range id.probed {
			if now.Sub(t) >= probeInterval || len(id.probed) >= maxProbed {
				delete(id.probed, a)
			}
		}
	}
	id.probed[ip] = now
	return true
}

// localMAC returns the MAC of this machine's interface that holds ip.
func (id *Identifier) localMAC(ip netip.Addr) ([6]byte, bool) {
	ifaces, err := id.interfaces()
	if err != nil {
		return [6]byte{}, false
	}
	for _, ifc := range ifaces {
		if len(ifc.HardwareAddr) != 6 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, ok := prefixOf(a); ok && p.Addr() == ip {
				var mac [6]byte
				copy(mac[:], ifc.HardwareAddr)
				if unicastMAC(mac) {
					return mac, true
				}
			}
		}
	}
	return [6]byte{}, false
}

func prefixOf(a net.Addr) (netip.Prefix, bool) {
	n, ok := a.(*net.IPNet)
	if !ok {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones), true
}

// probeUDP makes the kernel resolve ip's MAC by sending it one empty UDP
// datagram to the discard port (9). It sends only to private addresses on a
// network one of this machine's interfaces is directly on: anything else
// would go to the router and teach the kernel nothing, or leave the LAN.
func probeUDP(ctx context.Context, ip netip.Addr) bool {
	if !ip.Is4() || !(ip.IsPrivate() || ip.IsLinkLocalUnicast()) || !onLink(ip) {
		return false
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp4", netip.AddrPortFrom(ip, 9).String())
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Write(nil)
	return err == nil
}

// onLink tells whether ip is on a network an interface of this machine is
// directly attached to, and is not this machine's own address.
func onLink(ip netip.Addr) bool {
	ifaces, err := net.Interfaces()
	if err != nil {
		return false
	}
	found := false
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			p, ok := prefixOf(a)
			if !ok || !p.Addr().Is4() {
				continue
			}
			if p.Addr() == ip {
				return false
			}
			if p.Bits() < 32 && p.Masked().Contains(ip) {
				found = true
			}
		}
	}
	return found
}

// KnownMAC returns the MAC the kernel (or this machine's own interfaces)
// already knows for ip, "" if none. It sends nothing and never waits, so
// rule matching can call it for every listing.
func (id *Identifier) KnownMAC(ip string) string {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil || !addr.Unmap().Is4() {
		return ""
	}
	addr = addr.Unmap()
	if mac, ok := id.neighbour(addr, false); ok {
		return formatMAC(mac)
	}
	if mac, ok := id.localMAC(addr); ok {
		return formatMAC(mac)
	}
	return ""
}

// Present reports whether the device at ip is on the LAN: the kernel knows
// its MAC, or learns it after a probe (at most one a minute per device).
// The kernel keeps entries for a while after a device left, so a "yes" may
// be late; a "no" means the device did not answer.
func (id *Identifier) Present(ctx context.Context, ip string) bool {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, id.timeout)
	defer cancel()
	_, ok := id.lookupMAC(ctx, addr.Unmap())
	return ok
}
