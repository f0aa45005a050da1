package watcher

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// labNotify is the NOTIFY miniupnpd 2.3.1 sent in the lab after a mapping
// was added.
func labNotify(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(readCapture(t, "miniupnpd-2.3.1-lab-notify-seq1.http"))))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseNotify(t *testing.T) {
	r := labNotify(t)
	var body bytes.Buffer
	body.ReadFrom(r.Body)
	vars, err := parseNotify(body.Bytes())
	if err != nil {
		t.Fatalf("lab capture: %v", err)
	}
	if vars["PortMappingNumberOfEntries"] != "1" || vars["ConnectionStatus"] != "Connected" || len(vars) != 5 {
		t.Errorf("lab capture: %v", vars)
	}

	tests := []struct {
		name string
		body string
		want map[string]string
		bad  bool
	}{
		{"no namespace prefix", `<propertyset><property><A>1</A></property><property><B> x </B></property></propertyset>`, map[string]string{"A": "1", "B": "x"}, false},
		{"declaration and whitespace", "<?xml version=\"1.0\"?>\r\n<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\">\r\n <e:property>\r\n  <X>y</X>\r\n </e:property>\r\n</e:propertyset>\r\n", map[string]string{"X": "y"}, false},
		{"escaped XML in a value (LastChange style)", `<propertyset><property><LastChange>&lt;Event&gt;</LastChange></property></propertyset>`, map[string]string{"LastChange": "<Event>"}, false},
		{"control characters are cleaned", "<propertyset><property><A>a&#x9b;b</A></property></propertyset>", map[string]string{"A": "a\uFFFDb"}, false},
		{"raw escape character is refused", "<propertyset><property><A>a\x1bb</A></property></propertyset>", nil, true},
		{"other elements are skipped", `<propertyset><junk><A>1</A></junk><property><B>2</B></property></propertyset>`, map[string]string{"B": "2"}, false},
		{"empty", ``, nil, true},
		{"not a propertyset", `<html><body>hi</body></html>`, nil, true},
		{"cut off", `<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property><A>1</A>`, nil, true},
		{"mismatched tags", `<propertyset><property><A>1</B></property></propertyset>`, nil, true},
		{"entity bomb is not expanded", `<!DOCTYPE x [<!ENTITY a "aaaa">]><propertyset><property><A>&a;</A></property></propertyset>`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNotify([]byte(tt.body))
			if (err != nil) != tt.bad {
				t.Fatalf("parseNotify: %v, %v", got, err)
			}
			if !tt.bad && !equalMaps(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Many variables: only the first maxNotifyVars are kept.
	var b strings.Builder
	b.WriteString("<propertyset>")
	for i := range 1000 {
		b.WriteString("<property><V" + strconv.Itoa(i) + ">1</V" + strconv.Itoa(i) + "></property>")
	}
	b.WriteString("</propertyset>")
	if got, err := parseNotify([]byte(b.String())); err != nil || len(got) != maxNotifyVars {
		t.Errorf("1000 variables: %d kept, %v", len(got), err)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestParseTimeout(t *testing.T) {
	asked := 1800 * time.Second
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"Second-1800", 1800 * time.Second},
		{"second-300", 300 * time.Second},
		{" Second-60 ", 60 * time.Second},
		{"Second-infinite", asked},
		{"", assumedSubscriptionTimeout},
		{"1800", assumedSubscriptionTimeout},
		{"Second-", assumedSubscriptionTimeout},
		{"Second-0", assumedSubscriptionTimeout},
		{"Second--5", assumedSubscriptionTimeout},
		{"Second-99999999999", assumedSubscriptionTimeout},
		{"Second-1", minSubscriptionTimeout},
	}
	for _, tt := range tests {
		if got := parseTimeout(tt.in, asked); got != tt.want {
			t.Errorf("parseTimeout(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if got := parseTimeout("", 30*time.Second); got != 30*time.Second {
		t.Errorf("missing TIMEOUT with 30s asked = %s, want what was asked", got)
	}
	for _, d := range []time.Duration{2 * time.Second, 60 * time.Second, 1800 * time.Second} {
		if r := renewDelay(d); r > d/2 || d-r < time.Second {
			t.Errorf("renewDelay(%s) = %s", d, r)
		}
	}
}

func TestReadSID(t *testing.T) {
	for _, good := range []string{"uuid:65787031-7777-4000-8000-00000000f607", " uuid:x "} {
		if _, err := readSID(good); err != nil {
			t.Errorf("readSID(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", "  ", "uuid:a\r\nX-Evil: 1", "uuid:a b", strings.Repeat("a", 300), "uuid:\x00"} {
		if _, err := readSID(bad); err == nil {
			t.Errorf("readSID(%q) accepted", bad)
		}
	}
}

// TestGENARequests checks the requests byte for byte: header names in upper
// case, no NT or CALLBACK in a renewal.
func TestGENARequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reqs := make(chan string, 3)
	answers := []string{
		"HTTP/1.1 200 OK\r\nServer: x\r\nTimeout: Second-1800\r\nSID: uuid:abc\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTIMEOUT: Second-600\r\nSID: uuid:abc\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	}
	go func() {
		for _, a := range answers {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := http.ReadRequest(bufio.NewReader(conn))
			if err == nil {
				var raw bytes.Buffer
				r.Header.Write(&raw)
				reqs <- r.Method + " " + r.RequestURI + "\n" + raw.String()
			}
			conn.Write([]byte(a))
			conn.Close()
		}
	}()
	c := testClient(t, Config{})
	url := "http://" + ln.Addr().String() + "/evt/IPConn"
	ctx := context.Background()
	sub, err := c.subscribe(ctx, url, "http://192.168.77.10:4000/doorman/events/x", 1800*time.Second)
	if err != nil || sub.sid != "uuid:abc" || sub.timeout != 1800*time.Second {
		t.Fatalf("subscribe = %+v, %v", sub, err)
	}
	got := <-reqs
	// http.ReadRequest canonicalizes names; the raw check is below.
	for _, want := range []string{"SUBSCRIBE /evt/IPConn", "Callback: <http://192.168.77.10:4000/doorman/events/x>", "Nt: upnp:event", "Timeout: Second-1800"} {
		if !strings.Contains(got, want) {
			t.Errorf("SUBSCRIBE lacks %q:\n%s", want, got)
		}
	}
	granted, err := c.renew(ctx, url, "uuid:abc", 1800*time.Second)
	if err != nil || granted != 600*time.Second {
		t.Fatalf("renew = %s, %v", granted, err)
	}
	got = <-reqs
	if !strings.Contains(got, "Sid: uuid:abc") || strings.Contains(got, "Nt:") || strings.Contains(got, "Callback:") {
		t.Errorf("renewal:\n%s", got)
	}
	if err := c.unsubscribe(ctx, url, "uuid:abc"); err != nil {
		t.Fatal(err)
	}
	if got = <-reqs; !strings.HasPrefix(got, "UNSUBSCRIBE /evt/IPConn") || !strings.Contains(got, "Sid: uuid:abc") {
		t.Errorf("unsubscribe:\n%s", got)
	}

	// The names go out in upper case: look at the bytes.
	var raw bytes.Buffer
	req, _ := http.NewRequest("SUBSCRIBE", url, nil)
	req.Header["CALLBACK"] = []string{"<x>"}
	req.Header["NT"] = []string{"upnp:event"}
	req.Write(&raw)
	if !strings.Contains(raw.String(), "\r\nCALLBACK: <x>\r\n") || !strings.Contains(raw.String(), "\r\nNT: upnp:event\r\n") {
		t.Errorf("header names not kept as set:\n%s", raw.String())
	}
}

func TestGENARefused(t *testing.T) {
	igd := newFakeIGD(t)
	igd.gena.subscribeStatus = http.StatusServiceUnavailable
	c := testClient(t, Config{})
	_, err := c.subscribe(context.Background(), igd.srv.URL+"/evt/IPConn", "http://127.0.0.1:1/x", time.Minute)
	var ge *GENAError
	if !asGENA(err, &ge) || ge.Status != 503 || ge.Op != "SUBSCRIBE" {
		t.Fatalf("error %v, want a GENAError 503", err)
	}
	_, err = c.renew(context.Background(), igd.srv.URL+"/evt/IPConn", "uuid:unknown", time.Minute)
	if !asGENA(err, &ge) || ge.Status != http.StatusPreconditionFailed {
		t.Fatalf("renew of an unknown SID: %v, want 412", err)
	}
}

func asGENA(err error, target **GENAError) bool {
	ge, ok := err.(*GENAError)
	if ok {
		*target = ge
	}
	return ok
}

// TestHandleNotify drives the callback server's handler directly.
func TestHandleNotify(t *testing.T) {
	const (
		path   = "/doorman/events/0123456789abcdef"
		router = "192.168.77.1:40000"
		sid    = "uuid:65787031-7777-4000-8000-00000000f607"
	)
	body := `<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property><PortMappingNumberOfEntries>1</PortMappingNumberOfEntries></e:property></e:propertyset>`
	hdr := func(kv ...string) http.Header {
		// As the server hands them over: names canonical.
		h := http.Header{}
		h.Set("NT", "upnp:event")
		h.Set("NTS", "upnp:propchange")
		h.Set("SID", sid)
		h.Set("SEQ", "1")
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				h.Del(kv[i])
			} else {
				h.Set(kv[i], kv[i+1])
			}
		}
		return h
	}
	tests := []struct {
		name        string
		method      string
		path        string
		from        string
		header      http.Header
		body        string
		subscribing bool
		// awaitInitial: the listing after the SUBSCRIBE is not asked for
		// yet; an event is covered by it and only wakes the manager.
		awaitInitial bool
		want         int
		listed       bool
		initial      bool
	}{
		{name: "event", header: hdr(), want: 200, listed: true},
		{name: "miniupnpd's own NOTIFY", want: 200, listed: true},
		{name: "initial event", header: hdr("SEQ", "0"), awaitInitial: true, want: 200, initial: true},
		{name: "initial event after the wait: listed", header: hdr("SEQ", "0"), want: 200, listed: true},
		{name: "SEQ gap: listed like any event", header: hdr("SEQ", "9"), want: 200, listed: true},
		{name: "overtaken SEQ: listed", header: hdr("SEQ", "4294967295"), want: 200, listed: true},
		{name: "no SEQ: listed", header: hdr("SEQ", ""), want: 200, listed: true},
		{name: "unknown SID", header: hdr("SID", "uuid:other"), want: 412},
		{name: "no SID", header: hdr("SID", ""), want: 412},
		{name: "event before the SUBSCRIBE answer", header: hdr("SID", "uuid:new", "SEQ", "0"), subscribing: true, awaitInitial: true, want: 200, initial: true},
		{name: "refused event while awaiting the initial one", header: hdr("NTS", "ssdp:alive"), awaitInitial: true, want: 412},
		{name: "unknown path", path: "/doorman/events/guess", header: hdr(), want: 412},
		{name: "not from the router", from: "192.168.77.21:5555", header: hdr(), want: 403},
		{name: "GET", method: "GET", header: hdr(), want: 405},
		{name: "no NT", header: hdr("NT", ""), want: 400},
		{name: "no NTS", header: hdr("NTS", ""), want: 400},
		{name: "wrong NT", header: hdr("NT", "upnp:other"), want: 412},
		{name: "wrong NTS", header: hdr("NTS", "ssdp:alive"), want: 412},
		{name: "oversized body", header: hdr(), body: "<propertyset>" + strings.Repeat("<property><A>1</A></property>", 3000) + "</propertyset>", want: 413},
		{name: "bad XML", header: hdr(), body: "<propertyset><property>", want: 400},
		{name: "not a propertyset", header: hdr(), body: "<html/>", want: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testClient(t, Config{})
			w := c.NewWatcher(WatchConfig{})
			g := &gatewayWatch{w: w, addr: netip.MustParseAddr("192.168.77.1"), log: w.log, services: map[string]*serviceWatch{}}
			sw := &serviceWatch{g: g, path: path, log: w.log, dirty: make(chan struct{}, 1), wake: make(chan struct{}, 1),
				sid: sid, seq: 0, seqKnown: true, subscribing: tt.subscribing, awaitInitial: tt.awaitInitial, initial: make(chan struct{}, 1), gw: &Gateway{URL: "http://192.168.77.1:5000/rootDesc.xml"}, svc: &Service{Type: ipConn2}}
			w.register(sw)

			var r *http.Request
			if tt.header == nil {
				r = labNotify(t)
				r.RequestURI = ""
				r.URL.Path = path
			} else {
				b := cmpOrString(tt.body, body)
				r = httptest.NewRequest(cmpOrString(tt.method, "NOTIFY"), cmpOrString(tt.path, path), strings.NewReader(b))
				r.Header = tt.header
			}
			r.RemoteAddr = cmpOrString(tt.from, router)
			rec := httptest.NewRecorder()
			start := time.Now()
			w.handleNotify(rec, r)
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("handler took %s", took)
			}
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d (%s)", rec.Code, tt.want, rec.Body.String())
			}
			if rec.Code == http.StatusOK && rec.Header().Get("Content-Length") != "0" {
				t.Errorf("accepted with Content-Length %q, want 0 (not chunked)", rec.Header().Get("Content-Length"))
			}
			listed := false
			select {
			case <-sw.dirty:
				listed = true
				if sw.pending != ReasonEvent {
					t.Errorf("pending reason %q", sw.pending)
				}
			default:
			}
			if listed != tt.listed {
				t.Errorf("listing asked: %v, want %v", listed, tt.listed)
			}
			initial := false
			select {
			case <-sw.initial:
				initial = true
			default:
			}
			if initial != tt.initial {
				t.Errorf("manager told of the initial event: %v, want %v", initial, tt.initial)
			}
		})
	}
}

func cmpOrString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestParseSSDPNotify(t *testing.T) {
	alive, err := parseSSDPNotify([]byte(readCapture(t, "miniupnpd-2.3.1-lab-ssdp-alive.txt")))
	if err != nil {
		t.Fatal(err)
	}
	want := ssdpMessage{NTS: "ssdp:alive", NT: "upnp:rootdevice", USN: "uuid:65787031-7777-4000-8000-000000002db0::upnp:rootdevice",
		Location: "http://192.168.77.1:5000/rootDesc.xml", BootID: "1795250406"}
	if alive != want {
		t.Errorf("alive\n got %+v\nwant %+v", alive, want)
	}
	if alive.uuid() != "uuid:65787031-7777-4000-8000-000000002db0" {
		t.Errorf("uuid %q", alive.uuid())
	}
	bye, err := parseSSDPNotify([]byte(readCapture(t, "miniupnpd-2.3.1-lab-ssdp-byebye.txt")))
	if err != nil || bye.NTS != "ssdp:byebye" || bye.Location != "" || bye.BootID != "1795250391" {
		t.Errorf("byebye %+v, %v", bye, err)
	}
	svc, err := parseSSDPNotify([]byte(readCapture(t, "miniupnpd-2.3.1-lab-ssdp-alive-wanipconn.txt")))
	if err != nil || svc.uuid() != "uuid:65787031-7777-4000-8000-000000002db2" {
		t.Errorf("service alive %+v, %v", svc, err)
	}

	for _, tt := range []struct {
		name, msg string
		ok        bool
	}{
		{"no final blank line, LF only", "NOTIFY * HTTP/1.1\nNTS: ssdp:alive\nUSN: uuid:a::upnp:rootdevice\nLOCATION: http://10.0.0.1/", true},
		{"lower-case header names", "NOTIFY * HTTP/1.1\r\nnts: ssdp:byebye\r\nusn: uuid:a\r\n\r\n", true},
		{"search", "M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n", false},
		{"search answer", "HTTP/1.1 200 OK\r\nUSN: uuid:a\r\n\r\n", false},
		{"unknown NTS", "NOTIFY * HTTP/1.1\r\nNTS: ssdp:dance\r\nUSN: uuid:a\r\n\r\n", false},
		{"no USN", "NOTIFY * HTTP/1.1\r\nNTS: ssdp:alive\r\n\r\n", false},
		{"empty", "", false},
		{"binary", "\x00\x01\x02", false},
	} {
		if _, err := parseSSDPNotify([]byte(tt.msg)); (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
}

func TestSameHostURL(t *testing.T) {
	ref := "http://192.168.77.1:5000/rootDesc.xml"
	for _, tt := range []struct{ loc, want string }{
		{"http://192.168.77.1:5000/rootDesc.xml", "http://192.168.77.1:5000/rootDesc.xml"},
		{"http://192.168.77.1:49152/desc.xml", "http://192.168.77.1:49152/desc.xml"},
		{"http://192.168.77.99:5000/rootDesc.xml", ""},
		{"ftp://192.168.77.1/x", ""},
		{"", ""},
		{"::", ""},
	} {
		if got := sameHostURL(tt.loc, ref); got != tt.want {
			t.Errorf("sameHostURL(%q) = %q, want %q", tt.loc, got, tt.want)
		}
	}
}

func TestSeqBefore(t *testing.T) {
	tests := []struct {
		a, b uint32
		want bool
	}{
		{1, 2, true},
		{2, 1, false},
		{5, 5, false},
		{^uint32(0), 1, true}, // across the wrap
		{1, ^uint32(0), false},
		{14, 21, true},
	}
	for _, tt := range tests {
		if got := seqBefore(tt.a, tt.b); got != tt.want {
			t.Errorf("seqBefore(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
