package watcher

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// loopbackResponder answers M-SEARCHes on 127.0.0.1 the way a router does,
// so that the search is tested without sending anything to the LAN. It
// first sends the junk datagrams, then one answer per search.
type loopbackResponder struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []string // the searches received
}

func newLoopbackResponder(t *testing.T, junk []string, answer func(search string) string) *loopbackResponder {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &loopbackResponder{conn: conn}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			search := string(buf[:n])
			r.mu.Lock()
			r.got = append(r.got, search)
			first := len(r.got) == 1
			r.mu.Unlock()
			if first {
				for _, j := range junk {
					conn.WriteToUDPAddrPort([]byte(j), from)
				}
			}
			if a := answer(search); a != "" {
				conn.WriteToUDPAddrPort([]byte(a), from)
			}
		}
	}()
	return r
}

func (r *loopbackResponder) addr() netip.AddrPort {
	return r.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (r *loopbackResponder) searches() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func searchConn(t *testing.T) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// searchLine returns the value of a header of an M-SEARCH.
func searchLine(search, header string) string {
	for _, l := range strings.Split(search, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, header) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// An answer is handed over the moment it arrives, and the search ends as
// soon as its context does.
func TestSearchOnHandsOverAnswersAsTheyArrive(t *testing.T) {
	capture := readCapture(t, "miniupnpd-mobileap9x45-ssdp.txt")
	junk := []string{
		"garbage",
		strings.Replace(capture, "200 OK", "404 Not Found", 1),
		readCapture(t, "miniupnpd-2.3.1-lab-ssdp-alive.txt"),
	}
	r := newLoopbackResponder(t, junk, func(search string) string {
		return strings.Replace(capture, "urn:schemas-upnp-org:device:InternetGatewayDevice:1", searchLine(search, "ST"), 1)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var answers []searchAnswer
	start := time.Now()
	var firstAt time.Duration
	err := searchOn(ctx, searchConn(t), r.addr(), []string{searchIGDv1, searchIGDv2}, func(a searchAnswer) {
		if len(answers) == 0 {
			firstAt = time.Since(start)
		}
		answers = append(answers, a)
		if len(answers) == 2 {
			cancel()
		}
	})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("searchOn: %v", err)
	}
	if firstAt > 200*time.Millisecond || took > time.Second {
		t.Errorf("first answer after %s, search ended after %s", firstAt, took)
	}
	if len(answers) != 2 {
		t.Fatalf("answers %+v, want the two real ones", answers)
	}
	for i, st := range []string{searchIGDv1, searchIGDv2} {
		a := answers[i]
		if a.ST != st || a.From != netip.MustParseAddr("127.0.0.1") || !strings.HasPrefix(a.Location, "http://") {
			t.Errorf("answer %d = %+v", i, a)
		}
	}
	for _, s := range r.searches() {
		if !strings.HasPrefix(s, "M-SEARCH * HTTP/1.1\r\n") || searchLine(s, "MX") != "1" ||
			searchLine(s, "MAN") != `"ssdp:discover"` || searchLine(s, "HOST") != "239.255.255.250:1900" {
			t.Errorf("search %q", s)
		}
	}
}

// Searches go out again while nobody answers, a bounded number of times.
func TestSearchOnResends(t *testing.T) {
	r := newLoopbackResponder(t, nil, func(string) string { return "" })
	ctx, cancel := context.WithTimeout(context.Background(), searchSends*searchResendInterval+200*time.Millisecond)
	defer cancel()
	if err := searchOn(ctx, searchConn(t), r.addr(), []string{searchIGDv1, searchIGDv2}, func(searchAnswer) {}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if got := len(r.searches()); got != 2*searchSends {
		t.Errorf("%d searches sent, want %d", got, 2*searchSends)
	}
}

func TestParseSearchAnswer(t *testing.T) {
	tests := []struct {
		name, in     string
		wantST       string
		wantLocation string
		wantErr      bool
	}{
		{"miniupnpd", "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\nUSN: uuid:x\r\nEXT:\r\nLOCATION: http://192.168.77.1:5000/rootDesc.xml\r\n\r\n",
			searchIGDv2, "http://192.168.77.1:5000/rootDesc.xml", false},
		{"no blank line, mixed case, spaces", "HTTP/1.1 200 OK\r\nSt:  " + searchIGDv1 + " \r\nLocation: http://10.0.0.1/x.xml\r\n",
			searchIGDv1, "http://10.0.0.1/x.xml", false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nST: a\r\nLOCATION: b\r\n\r\n", "a", "b", false},
		{"not 200", "HTTP/1.1 500 Oops\r\nST: a\r\nLOCATION: b\r\n\r\n", "", "", true},
		{"a NOTIFY", "NOTIFY * HTTP/1.1\r\nNT: a\r\nLOCATION: b\r\n\r\n", "", "", true},
		{"an M-SEARCH", string(searchRequest(searchIGDv1)), "", "", true},
		{"no LOCATION", "HTTP/1.1 200 OK\r\nST: a\r\n\r\n", "", "", true},
		{"no ST", "HTTP/1.1 200 OK\r\nLOCATION: b\r\n\r\n", "", "", true},
		{"empty", "", "", "", true},
		{"control characters", "HTTP/1.1 200 OK\r\nST: a\x1b[2J\r\nLOCATION: http://10.0.0.1/\r\n\r\n", "", "", true},
		{"invalid UTF-8 is cleaned", "HTTP/1.1 200 OK\r\nST: a\r\nLOCATION: http://10.0.0.1/\xffx\r\n\r\n", "a", "http://10.0.0.1/\ufffdx", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, loc, err := parseSearchAnswer([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if st != tt.wantST || loc != tt.wantLocation {
				t.Errorf("got %q, %q; want %q, %q", st, loc, tt.wantST, tt.wantLocation)
			}
		})
	}
}

// Every captured SSDP answer reads as an answer naming a description URL;
// TestDiscover* shows that only one on the default gateway is believed.
func TestEveryCapturedSSDPAnswer(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "routers", "*-ssdp.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no SSDP captures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			st, loc, err := parseSearchAnswer(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(st, "urn:schemas-upnp-org:device:InternetGatewayDevice:") || !strings.HasPrefix(loc, "http://") {
				t.Errorf("ST %q, LOCATION %q", st, loc)
			}
		})
	}
}

// What any LAN host sends to the search socket must never panic doorman,
// and what it yields is safe to log.
func FuzzParseSearchAnswer(f *testing.F) {
	addCaptures(f, "*-ssdp.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		st, loc, err := parseSearchAnswer(b)
		if err != nil {
			return
		}
		for _, s := range []string{st, loc} {
			if s == "" || !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\r\n") || utf8.RuneCountInString(s) > 513 {
				t.Errorf("unsafe text %q", s)
			}
		}
	})
}
