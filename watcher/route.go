package watcher

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

const (
	rtfUp      = 0x1
	rtfGateway = 0x2
)

// parseProcNetRoute reads /proc/net/route. Addresses there are 32-bit hex
// numbers in the host's byte order, so the same file reads differently on a
// big-endian MIPS router than on a PC.
func parseProcNetRoute(r io.Reader) ([]netip.Addr, error) {
	var gws []netip.Addr
	seen := map[netip.Addr]bool{}
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		dest, gw, flagsHex, mask := f[1], f[2], f[3], f[7]
		if dest != "00000000" || mask != "00000000" {
			continue
		}
		flags, err := strconv.ParseUint(flagsHex, 16, 32)
		if err != nil || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		raw, err := hex.DecodeString(gw)
		if err != nil || len(raw) != 4 {
			continue
		}
		// The kernel prints the address's bytes in memory as a host-order
		// number: writing that number back in host order gives the bytes.
		var ip [4]byte
		binary.NativeEndian.PutUint32(ip[:], binary.BigEndian.Uint32(raw))
		addr := netip.AddrFrom4(ip)
		if !seen[addr] && !addr.IsUnspecified() {
			seen[addr] = true
			gws = append(gws, addr)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("watcher: unable to read the routing table: %w", err)
	}
	return gws, nil
}

// addressesTowards returns the router's IP and doorman's own address towards
// it, as a Watcher finds them: the local address of a UDP socket connected
// to the router, which the kernel picks without sending anything.
func addressesTowards(ctx context.Context, rawURL string) (router, local netip.Addr, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return router, local, fmt.Errorf("router URL: %w", err)
	}
	router, err = netip.ParseAddr(u.Hostname())
	if err != nil {
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
		if lerr == nil && len(addrs) == 0 {
			lerr = errors.New("no address")
		}
		if lerr != nil {
			return router, local, fmt.Errorf("unable to resolve the router's name %q: %w", u.Hostname(), lerr)
		}
		router = addrs[0]
	}
	router = router.Unmap()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(router, ssdpPort)))
	if err != nil {
		return router, local, fmt.Errorf("no route to the router %s: %w", router, err)
	}
	defer conn.Close()
	return router, conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
