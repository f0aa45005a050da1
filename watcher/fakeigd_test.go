package watcher

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/internal/testlog"
)

// fakeIGD is an Internet Gateway Device on httptest. It serves a root
// description (a real capture from testdata/routers, or a template) and
// answers SOAP requests on every other path from a table of responses, the
// way tailscale's portmapper tests do.
type fakeIGD struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// description is served at /rootDesc.xml; "{{BASE}}" is replaced by the
	// server's URL, and so are the hosts named in rewriteHosts.
	description  string
	rawDesc      string // a whole HTTP response for the description, if set
	rewriteHosts []string
	// entry answers GetGenericPortMappingEntry for an index: a full SOAP
	// body (200) or, with fault set, a fault body (500).
	entry func(index int) (body string, fault bool)
	// handle, if set, sees every SOAP request first; it returns true when it
	// answered.
	handle func(w http.ResponseWriter, r *http.Request, action string, index int) bool
	// rawSOAP is a whole HTTP response written for each SOAP request, for
	// captures of HTTP/1.0 answers without Content-Length.
	rawSOAP func(index int) string

	// table, once set with setTable, is the router's port mapping table:
	// GetGenericPortMappingEntry lists it (ending with 713),
	// GetSpecificPortMappingEntry looks a key up in it (714 when missing)
	// and DeletePortMapping removes from it (714 when missing). entry and
	// handle come first.
	table   []PortMappingEntry
	tableOn bool
	// deleteFault, if nonzero, is the fault every DeletePortMapping gets,
	// and the row stays; deleteKeeps answers 200 and keeps the row.
	deleteFault int
	deleteKeeps bool
	// specificFault, if nonzero, is the fault every
	// GetSpecificPortMappingEntry gets.
	specificFault int

	calls      map[string]int
	lastAction string
	soapAction []string

	gena fakeGENA
}

// fakeGENA is the fake's event publisher at /evt/IPConn, behaving like
// miniupnpd: SUBSCRIBE answers 200 with SID and TIMEOUT, then the initial
// event (SEQ 0) goes to the callback.
type fakeGENA struct {
	subs    map[string]*fakeSub
	nextSID int
	// subscribeStatus, if nonzero, answers every new SUBSCRIBE (a router
	// that refuses events); renewStatus every renewal.
	subscribeStatus int
	renewStatus     int
	// grant is the TIMEOUT answered; empty echoes what was asked, "-"
	// leaves the header out.
	grant string
	// notifyFirst sends the initial event before answering the SUBSCRIBE,
	// as a fast router on a loaded host can seem to.
	notifyFirst bool
	// silent sends no events at all: a firewall on doorman's side drops
	// them.
	silent bool
	// holdInitial, if set, delays the initial event until it is closed:
	// a busy miniupnpd, whose in-flight NOTIFY swallows the next change.
	holdInitial chan struct{}
	// log is "SUBSCRIBE", "renew" or "UNSUBSCRIBE" per request, and
	// statuses the answers to NOTIFYs sent.
	log      []string
	statuses []int
}

type fakeSub struct {
	sid, callback string
	seq           uint32
}

func newFakeIGD(t *testing.T) *fakeIGD {
	t.Helper()
	f := &fakeIGD{t: t, calls: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIGD) URL() string { return f.srv.URL + "/rootDesc.xml" }

// actions returns the SOAPAction headers received so far. Requests may still
// arrive after a listing returns: the ones it abandoned past the end.
func (f *fakeIGD) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.soapAction...)
}

func (f *fakeIGD) count(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[action]
}

var (
	soapActionHeader = regexp.MustCompile(`^"?([^#"]*)#([A-Za-z]+)"?$`)
	soapIndexArg     = regexp.MustCompile(`<NewPortMappingIndex>([0-9]+)</NewPortMappingIndex>`)
)

func (f *fakeIGD) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	desc, rawDesc, hosts := f.description, f.rawDesc, f.rewriteHosts
	entry, handle, rawSOAP := f.entry, f.handle, f.rawSOAP
	f.mu.Unlock()
	base := f.srv.URL

	if r.Method == "SUBSCRIBE" || r.Method == "UNSUBSCRIBE" {
		f.serveGENA(w, r)
		return
	}
	if r.Method == http.MethodGet {
		if rawDesc != "" {
			writeRaw(f.t, w, rewrite(rawDesc, base, hosts))
			return
		}
		if desc == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		io.WriteString(w, rewrite(desc, base, hosts))
		return
	}

	m := soapActionHeader.FindStringSubmatch(r.Header.Get("SOAPAction"))
	if m == nil {
		http.Error(w, "no SOAPAction", http.StatusBadRequest)
		return
	}
	action := m[2]
	body, _ := io.ReadAll(r.Body)
	index := -1
	if im := soapIndexArg.FindSubmatch(body); im != nil {
		index, _ = strconv.Atoi(string(im[1]))
	}
	f.mu.Lock()
	f.calls[action]++
	f.lastAction = action
	f.soapAction = append(f.soapAction, r.Header.Get("SOAPAction"))
	f.mu.Unlock()

	if handle != nil && handle(w, r, action, index) {
		return
	}
	if rawSOAP != nil {
		writeRaw(f.t, w, rawSOAP(index))
		return
	}
	if entry == nil && f.serveTable(w, action, index, body) {
		return
	}
	if action != "GetGenericPortMappingEntry" || entry == nil {
		writeFault(w, 401, "Invalid Action")
		return
	}
	resp, fault := entry(index)
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	if fault {
		w.WriteHeader(http.StatusInternalServerError)
	}
	io.WriteString(w, resp)
}

// rewrite points the addresses a capture names at the test server, so that
// nothing is ever sent to the LAN addresses in the captures.
func rewrite(s, base string, hosts []string) string {
	s = strings.ReplaceAll(s, "{{BASE}}", base)
	for _, h := range hosts {
		s = strings.ReplaceAll(s, h, base)
	}
	return s
}

// writeRaw sends a whole captured HTTP response, byte for byte, and closes
// the connection, as an HTTP/1.0 router without Content-Length does.
func writeRaw(t *testing.T, w http.ResponseWriter, raw string) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		t.Error("fake IGD: cannot hijack")
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		t.Errorf("fake IGD: hijack: %v", err)
		return
	}
	defer conn.Close()
	buf.WriteString(raw)
	buf.Flush()
}

func writeFault(w http.ResponseWriter, code int, desc string) {
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.WriteHeader(http.StatusInternalServerError)
	io.WriteString(w, faultBody(code, desc))
}

// faultBody is a fault the way stock miniupnpd writes it.
func faultBody(code int, desc string) string {
	return fmt.Sprintf(`<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code, desc)
}

// entryBody is a GetGenericPortMappingEntry answer the way miniupnpd writes
// it; the values are inserted as given (already escaped).
func entryBody(serviceType string, e PortMappingEntry) string {
	return fmt.Sprintf(`<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetGenericPortMappingEntryResponse xmlns:u="%s"><NewRemoteHost>%s</NewRemoteHost><NewExternalPort>%s</NewExternalPort><NewProtocol>%s</NewProtocol><NewInternalPort>%s</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>%s</NewEnabled><NewPortMappingDescription>%s</NewPortMappingDescription><NewLeaseDuration>%s</NewLeaseDuration></u:GetGenericPortMappingEntryResponse></s:Body></s:Envelope>`,
		serviceType, e.RemoteHost, e.ExternalPort, e.Protocol, e.InternalPort, e.InternalClient, e.Enabled, e.Description, e.LeaseDuration)
}

// miniupnpdDescription is the root description of the lab's miniupnpd in
// IGDv2 mode, cut to the parts doorman reads.
const miniupnpdDescription = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1"><specVersion><major>1</major><minor>1</minor></specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><friendlyName>Test router</friendlyName><manufacturer>MiniUPnP</manufacturer><modelName>MiniUPnPd</modelName><UDN>uuid:00000000-0000-0000-0000-000000000000</UDN><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL></service></serviceList></device></deviceList></device></deviceList></device></root>`

const ipConn2 = "urn:schemas-upnp-org:service:WANIPConnection:2"

// tableEntries answers from a list of rows and ends the list with a fault.
func tableEntries(rows []PortMappingEntry, endCode int) func(int) (string, bool) {
	return func(i int) (string, bool) {
		if i < 0 || i >= len(rows) {
			return faultBody(endCode, "SpecifiedArrayIndexInvalid"), true
		}
		return entryBody(ipConn2, rows[i]), false
	}
}

func row(proto string, ext int, client string, internal int, desc string) PortMappingEntry {
	return PortMappingEntry{
		ExternalPort: strconv.Itoa(ext), Protocol: proto, InternalPort: strconv.Itoa(internal),
		InternalClient: client, Enabled: "1", Description: desc, LeaseDuration: "0",
	}
}

func readCapture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "routers", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testClient returns a client with short timeouts that logs into the test.
func testClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	cfg.Logger = testlog.New(t, slog.LevelDebug)
	return New(cfg)
}

func gatewayOf(t *testing.T, c *Client, url string) *Gateway {
	t.Helper()
	gw, err := c.fetchGateway(context.Background(), url)
	if err != nil {
		t.Fatalf("fetchGateway(%s): %v", url, err)
	}
	return gw
}

// setTable turns on the stateful table and fills it.
func (f *fakeIGD) setTable(rows ...PortMappingEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.table = append([]PortMappingEntry(nil), rows...)
	f.tableOn = true
}

// addRow adds a mapping to the table, as a device does.
func (f *fakeIGD) addRow(r PortMappingEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.table = append(f.table, r)
	f.tableOn = true
}

func (f *fakeIGD) rows() []PortMappingEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]PortMappingEntry(nil), f.table...)
}

var (
	soapPortArg  = regexp.MustCompile(`<NewExternalPort>\s*([0-9]+)\s*</NewExternalPort>`)
	soapProtoArg = regexp.MustCompile(`<NewProtocol>\s*([A-Za-z]+)\s*</NewProtocol>`)
)

// serveTable answers from the stateful table; false when it is off.
func (f *fakeIGD) serveTable(w http.ResponseWriter, action string, index int, body []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.tableOn {
		return false
	}
	find := func() int {
		pm, prm := soapPortArg.FindSubmatch(body), soapProtoArg.FindSubmatch(body)
		if pm == nil || prm == nil {
			return -1
		}
		for i, r := range f.table {
			if strings.TrimSpace(r.ExternalPort) == string(pm[1]) && strings.EqualFold(r.Protocol, string(prm[1])) {
				return i
			}
		}
		return -1
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	switch action {
	case "GetGenericPortMappingEntry":
		if index < 0 || index >= len(f.table) {
			writeFault(w, 713, "SpecifiedArrayIndexInvalid")
			return true
		}
		io.WriteString(w, entryBody(ipConn2, f.table[index]))
	case "GetSpecificPortMappingEntry":
		if f.specificFault != 0 {
			writeFault(w, f.specificFault, "Fault")
			return true
		}
		i := find()
		if i < 0 {
			writeFault(w, 714, "NoSuchEntryInArray")
			return true
		}
		e := f.table[i]
		fmt.Fprintf(w, `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetSpecificPortMappingEntryResponse xmlns:u="%s"><NewInternalPort>%s</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>%s</NewEnabled><NewPortMappingDescription>%s</NewPortMappingDescription><NewLeaseDuration>%s</NewLeaseDuration></u:GetSpecificPortMappingEntryResponse></s:Body></s:Envelope>`,
			ipConn2, e.InternalPort, e.InternalClient, e.Enabled, e.Description, e.LeaseDuration)
	case "DeletePortMapping":
		if f.deleteFault != 0 {
			writeFault(w, f.deleteFault, "Refused")
			return true
		}
		i := find()
		if i < 0 {
			writeFault(w, 714, "NoSuchEntryInArray")
			return true
		}
		if !f.deleteKeeps {
			f.table = append(f.table[:i], f.table[i+1:]...)
		}
		fmt.Fprintf(w, `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:DeletePortMappingResponse xmlns:u="%s"></u:DeletePortMappingResponse></s:Body></s:Envelope>`, ipConn2)
	default:
		writeFault(w, 401, "Invalid Action")
	}
	return true
}

func (f *fakeIGD) serveGENA(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/evt/IPConn" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	g := &f.gena
	if g.subs == nil {
		g.subs = map[string]*fakeSub{}
	}
	sid := r.Header.Get("SID")
	switch {
	case r.Method == "UNSUBSCRIBE":
		g.log = append(g.log, "UNSUBSCRIBE")
		_, ok := g.subs[sid]
		delete(g.subs, sid)
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusPreconditionFailed)
		}
		return
	case sid != "":
		g.log = append(g.log, "renew")
		_, ok := g.subs[sid]
		status := g.renewStatus
		if status == 0 && (!ok || r.Header.Get("NT") != "" || r.Header.Get("CALLBACK") != "") {
			status = http.StatusPreconditionFailed
		}
		grant := g.grant
		f.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		writeGrant(w, grant, r.Header.Get("TIMEOUT"))
		w.Header().Set("SID", sid)
		return
	}
	g.log = append(g.log, "SUBSCRIBE")
	cb := strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("CALLBACK"), "<"), ">")
	if g.subscribeStatus != 0 || r.Header.Get("NT") != "upnp:event" || cb == "" {
		status := cmpOr(g.subscribeStatus, http.StatusPreconditionFailed)
		f.mu.Unlock()
		w.WriteHeader(status)
		return
	}
	g.nextSID++
	sub := &fakeSub{sid: fmt.Sprintf("uuid:fake-sub-%d", g.nextSID), callback: cb}
	g.subs[sub.sid] = sub
	grant, first, silent, hold := g.grant, g.notifyFirst, g.silent, g.holdInitial
	f.mu.Unlock()
	if silent {
		writeGrant(w, grant, r.Header.Get("TIMEOUT"))
		w.Header().Set("SID", sub.sid)
		w.WriteHeader(http.StatusOK)
		return
	}
	if first {
		f.sendNotify(sub)
	}
	writeGrant(w, grant, r.Header.Get("TIMEOUT"))
	w.Header().Set("SID", sub.sid)
	w.WriteHeader(http.StatusOK)
	if !first {
		go func() {
			if hold != nil {
				<-hold
			}
			f.sendNotify(sub)
		}()
	}
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func writeGrant(w http.ResponseWriter, grant, asked string) {
	switch grant {
	case "":
		w.Header().Set("TIMEOUT", asked)
	case "-":
	default:
		w.Header().Set("TIMEOUT", grant)
	}
}

// notify sends an event to every subscriber, as the router does after a
// mapping is added or deleted, and returns the answers' statuses.
func (f *fakeIGD) notify() []int {
	f.mu.Lock()
	var subs []*fakeSub
	for _, s := range f.gena.subs {
		subs = append(subs, s)
	}
	f.mu.Unlock()
	var out []int
	for _, s := range subs {
		out = append(out, f.sendNotify(s))
	}
	return out
}

// forgetSubscriptions is what a router restart does to them.
func (f *fakeIGD) forgetSubscriptions() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gena.subs = nil
}

func (f *fakeIGD) genaLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.gena.log...)
}

func (f *fakeIGD) genaCount(what string) int {
	n := 0
	for _, s := range f.genaLog() {
		if s == what {
			n++
		}
	}
	return n
}

func (f *fakeIGD) subscriptions() []fakeSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeSub
	for _, s := range f.gena.subs {
		out = append(out, *s)
	}
	return out
}

var notifyClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 5 * time.Second}

// sendNotify sends one event the way miniupnpd 2.3.1 writes it.
func (f *fakeIGD) sendNotify(s *fakeSub) int {
	f.mu.Lock()
	seq := s.seq
	s.seq++
	n := len(f.table)
	f.mu.Unlock()
	body := fmt.Sprintf(`<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property><ConnectionStatus>Connected</ConnectionStatus></e:property><e:property><PortMappingNumberOfEntries>%d</PortMappingNumberOfEntries></e:property></e:propertyset>`, n)
	req, err := http.NewRequest("NOTIFY", s.callback, strings.NewReader(body))
	if err != nil {
		f.t.Errorf("fake IGD: NOTIFY to %q: %v", s.callback, err)
		return 0
	}
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	req.Header["NT"] = []string{"upnp:event"}
	req.Header["NTS"] = []string{"upnp:propchange"}
	req.Header["SID"] = []string{s.sid}
	req.Header["SEQ"] = []string{strconv.FormatUint(uint64(seq), 10)}
	resp, err := notifyClient.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		resp.Body.Close()
	}
	f.mu.Lock()
	f.gena.statuses = append(f.gena.statuses, status)
	f.mu.Unlock()
	return status
}

func (f *fakeIGD) notifyStatuses() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.gena.statuses...)
}
