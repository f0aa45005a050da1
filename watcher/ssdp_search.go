package watcher

// SSDP search (UPnP Device Architecture 1.1, 1.3): an M-SEARCH multicast to
// 239.255.255.250:1900, answered by unicast HTTP-over-UDP responses to the
// searching socket.
//
// goupnp's httpu client (HTTPUClient.DoWithContext, behind ssdp.RawSearch)
// collects every answer into a slice and returns only when the whole search
// window has passed, which made `doorman list` wait 2 s for an answer that
// arrives within milliseconds. Discovery needs each answer as it arrives, so
// the search is written and read here over a plain UDP socket; goupnp still
// reads descriptions and speaks SOAP.
//
// Router quirks handled here:
//   - devices may delay an answer by a random time up to MX seconds to
//     spread the load (miniupnpd built with DELAY_MSEARCH_RESPONSE); MX is
//     therefore the smallest UDA allows, 1;
//   - UDP drops datagrams (Wi-Fi above all): the searches go out again
//     after searchResendInterval, as UDA 1.1 suggests sending them more than
//     once;
//   - some stacks leave out the blank line that ends the headers, and header
//     names come in any case (DD-WRT: `Ext: `).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"time"
)

const (
	// searchMX is the MX of the M-SEARCH: the longest a device may wait
	// before it answers.
	searchMX = 1
	// searchSends is how often each M-SEARCH goes out, searchResendInterval
	// apart.
	searchSends          = 3
	searchResendInterval = 300 * time.Millisecond
	// maxSearchAnswerBytes is more than any answer needs (the captures in
	// testdata/routers are 250 to 450 bytes); a longer datagram is cut and
	// then fails to parse.
	maxSearchAnswerBytes = 2048
)

// searchAnswer is one answer to an M-SEARCH, its fields cleaned.
type searchAnswer struct {
	From     netip.Addr // the datagram's source address
	ST       string
	Location string
}

// ssdpSearch sends M-SEARCHes for targets from a new socket, on the
// interface the kernel chooses for multicast (that of the default route),
// and calls answer with each answer as it arrives, until ctx ends. It
// returns nil when ctx ends, and an error only when the search could not be
// sent.
func ssdpSearch(ctx context.Context, targets []string, answer func(searchAnswer)) error {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return fmt.Errorf("watcher: unable to open an SSDP socket: %w", err)
	}
	defer conn.Close()
	group := netip.AddrPortFrom(netip.AddrFrom4([4]byte{239, 255, 255, 250}), ssdpPort)
	return searchOn(ctx, conn, group, targets, answer)
}

// searchOn runs a search on conn, sending to dest (the SSDP group, or a
// test's loopback responder).
func searchOn(ctx context.Context, conn *net.UDPConn, dest netip.AddrPort, targets []string, answer func(searchAnswer)) error {
	send := func() error {
		for _, st := range targets {
			if _, err := conn.WriteToUDPAddrPort(searchRequest(st), dest); err != nil {
				return fmt.Errorf("watcher: unable to send an SSDP search for %s: %w", st, err)
			}
		}
		return nil
	}
	if err := send(); err != nil {
		return err
	}
	// Only the stop below sets a deadline, so a read cannot outlive ctx.
	stopRead := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stopRead()
	resendCtx, stopResend := context.WithCancel(ctx)
	resent := make(chan struct{})
	go func() {
		defer close(resent)
		t := time.NewTicker(searchResendInterval)
		defer t.Stop()
		for range searchSends - 1 {
			select {
			case <-resendCtx.Done():
				return
			case <-t.C:
				// The first searches went out; a later one that
				// fails changes nothing worth reporting.
				_ = send()
			}
		}
	}()
	defer func() {
		stopResend()
		<-resent
	}()

	buf := make([]byte, maxSearchAnswerBytes)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// ICMP errors from earlier sends surface here on
			// Linux as ECONNREFUSED; they say nothing about the
			// answers still to come.
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("watcher: SSDP socket closed: %w", err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		st, loc, err := parseSearchAnswer(buf[:n])
		if err != nil {
			continue
		}
		answer(searchAnswer{From: from.Addr().Unmap(), ST: st, Location: loc})
	}
}

// searchRequest is an M-SEARCH for st, the way upnpc writes it.
func searchRequest(st string) []byte {
	return []byte("M-SEARCH * HTTP/1.1\r\n" +
		"HOST: 239.255.255.250:1900\r\n" +
		"MAN: \"ssdp:discover\"\r\n" +
		fmt.Sprintf("MX: %d\r\n", searchMX) +
		"ST: " + st + "\r\n\r\n")
}

// parseSearchAnswer reads the ST and LOCATION of an answer to an M-SEARCH.
// Anything else that reaches the socket (another status, a NOTIFY) is an
// error.
func parseSearchAnswer(b []byte) (st, location string, err error) {
	if len(b) > maxSSDPBytes {
		return "", "", fmt.Errorf("SSDP answer of %d bytes", len(b))
	}
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
	line, err := tp.ReadLine()
	if err != nil {
		return "", "", fmt.Errorf("SSDP answer: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") || f[1] != "200" {
		return "", "", fmt.Errorf("not an SSDP answer: %q", cleanText(line, 64))
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return "", "", fmt.Errorf("SSDP answer headers: %w", err)
	}
	st = cleanText(strings.TrimSpace(h.Get("ST")), 256)
	location = cleanText(strings.TrimSpace(h.Get("LOCATION")), 512)
	if st == "" || location == "" {
		return "", "", errors.New("SSDP answer without ST or LOCATION")
	}
	return st, location, nil
}
