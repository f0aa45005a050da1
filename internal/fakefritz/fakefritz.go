// Package fakefritz is a stand-in AVM FRITZ!Box on httptest for tests: it
// serves a real igddesc.xml (InternetGatewayDevice:1, WANIPConnection:1 at
// /igdupnp/control/WANIPConn1) and its IGD:2 twin igd2desc.xml
// (InternetGatewayDevice:2, WANIPConnection:2 at
// /igd2upnp/control/WANIPConn1) on one address and port, and both control
// URLs serve one port mapping table, as the real box does.
//
// The twin is made from the IGD:1 capture the way the real box differs:
// device and service versions 2, paths under /igd2upnp/, and other UDNs
// (a FRITZ!Box 7490's igd2desc.xml has the root UDN
// uuid:75802409-bccb-40e7-9f6c-… where its igddesc.xml has …-8e6c-…;
// https://github.com/home-assistant/core/issues/43014).
//
// Events are refused (SUBSCRIBE answers 501), so watchers poll.
package fakefritz

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Paths of the two descriptions and their connection services.
const (
	IGD1Path    = "/igddesc.xml"
	IGD2Path    = "/igd2desc.xml"
	IGD1Control = "/igdupnp/control/WANIPConn1"
	IGD2Control = "/igd2upnp/control/WANIPConn1"
)

// Row is one port mapping of the table.
type Row struct {
	Protocol       string // "TCP" or "UDP"
	ExternalPort   int
	InternalClient string
	InternalPort   int
	Description    string
}

// Box is the stand-in FRITZ!Box.
type Box struct {
	t    testing.TB
	srv  *httptest.Server
	igd1 string
	igd2 string

	mu    sync.Mutex
	table []Row
	// requests counts requests by path ("GET /igddesc.xml", "POST
	// /igd2upnp/control/WANIPConn1#GetGenericPortMappingEntry").
	requests map[string]int
}

// New starts a FRITZ!Box serving igd1, the IGD:1 description (the capture
// watcher/testdata/routers/avm-fritzbox7590-rootdesc.xml), and its twin.
func New(t testing.TB, igd1 []byte) *Box {
	t.Helper()
	b := &Box{t: t, igd1: string(igd1), igd2: IGD2Twin(string(igd1)), requests: map[string]int{}}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

// IGD2Twin returns the igd2desc.xml that goes with an igddesc.xml.
func IGD2Twin(igd1 string) string {
	return strings.NewReplacer(
		"urn:schemas-upnp-org:device:InternetGatewayDevice:1", "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
		"urn:schemas-upnp-org:device:WANDevice:1", "urn:schemas-upnp-org:device:WANDevice:2",
		"urn:schemas-upnp-org:device:WANConnectionDevice:1", "urn:schemas-upnp-org:device:WANConnectionDevice:2",
		"urn:schemas-upnp-org:service:WANIPConnection:1", "urn:schemas-upnp-org:service:WANIPConnection:2",
		"/igdupnp/", "/igd2upnp/",
		"-8e6c-", "-9f6c-", "-8e6b-", "-9f6b-", "-8e6a-", "-9f6a-",
		"uuid:75802409-bccb-just-a-test-udn", "uuid:75802409-bccb-igd2-a-test-udn",
	).Replace(igd1)
}

// IGD1URL and IGD2URL are the descriptions' URLs.
func (b *Box) IGD1URL() string { return b.srv.URL + IGD1Path }
func (b *Box) IGD2URL() string { return b.srv.URL + IGD2Path }

// SetTable replaces the port mapping table.
func (b *Box) SetTable(rows ...Row) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.table = append([]Row(nil), rows...)
}

// Rows returns the table.
func (b *Box) Rows() []Row {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Row(nil), b.table...)
}

// Requests returns how many requests came for key: "GET /igddesc.xml" or
// "POST /igd2upnp/control/WANIPConn1#GetGenericPortMappingEntry".
func (b *Box) Requests(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests[key]
}

var (
	actionHeader = regexp.MustCompile(`#([A-Za-z]+)"?$`)
	indexArg     = regexp.MustCompile(`<NewPortMappingIndex>\s*([0-9]+)\s*</NewPortMappingIndex>`)
	portArg      = regexp.MustCompile(`<NewExternalPort>\s*([0-9]+)\s*</NewExternalPort>`)
	protoArg     = regexp.MustCompile(`<NewProtocol>\s*([A-Za-z]+)\s*</NewProtocol>`)
)

func (b *Box) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && (r.URL.Path == IGD1Path || r.URL.Path == IGD2Path):
		b.count("GET " + r.URL.Path)
		desc := b.igd1
		if r.URL.Path == IGD2Path {
			desc = b.igd2
		}
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		io.WriteString(w, desc)
	case r.Method == "SUBSCRIBE" || r.Method == "UNSUBSCRIBE":
		b.count(r.Method + " " + r.URL.Path)
		w.WriteHeader(http.StatusNotImplemented)
	case r.Method == http.MethodPost && (r.URL.Path == IGD1Control || r.URL.Path == IGD2Control):
		m := actionHeader.FindStringSubmatch(r.Header.Get("SOAPAction"))
		if m == nil {
			http.Error(w, "no SOAPAction", http.StatusBadRequest)
			return
		}
		b.count("POST " + r.URL.Path + "#" + m[1])
		body, _ := io.ReadAll(r.Body)
		serviceType := "urn:schemas-upnp-org:service:WANIPConnection:1"
		if r.URL.Path == IGD2Control {
			serviceType = "urn:schemas-upnp-org:service:WANIPConnection:2"
		}
		b.soap(w, serviceType, m[1], body)
	default:
		http.NotFound(w, r)
	}
}

func (b *Box) count(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests[key]++
}

func (b *Box) soap(w http.ResponseWriter, serviceType, action string, body []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	find := func() int {
		pm, prm := portArg.FindSubmatch(body), protoArg.FindSubmatch(body)
		if pm == nil || prm == nil {
			return -1
		}
		for i, r := range b.table {
			if strconv.Itoa(r.ExternalPort) == string(pm[1]) && strings.EqualFold(r.Protocol, string(prm[1])) {
				return i
			}
		}
		return -1
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	switch action {
	case "GetGenericPortMappingEntry":
		i := -1
		if m := indexArg.FindSubmatch(body); m != nil {
			i, _ = strconv.Atoi(string(m[1]))
		}
		if i < 0 || i >= len(b.table) {
			fault(w, 713, "SpecifiedArrayIndexInvalid")
			return
		}
		r := b.table[i]
		respond(w, serviceType, action, fmt.Sprintf("<NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort><NewProtocol>%s</NewProtocol><NewInternalPort>%d</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>%s</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration>",
			r.ExternalPort, r.Protocol, r.InternalPort, r.InternalClient, r.Description))
	case "GetSpecificPortMappingEntry":
		i := find()
		if i < 0 {
			fault(w, 714, "NoSuchEntryInArray")
			return
		}
		r := b.table[i]
		respond(w, serviceType, action, fmt.Sprintf("<NewInternalPort>%d</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>%s</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration>",
			r.InternalPort, r.InternalClient, r.Description))
	case "DeletePortMapping":
		i := find()
		if i < 0 {
			fault(w, 714, "NoSuchEntryInArray")
			return
		}
		b.table = append(b.table[:i], b.table[i+1:]...)
		respond(w, serviceType, action, "")
	default:
		fault(w, 401, "Invalid Action")
	}
}

func respond(w http.ResponseWriter, serviceType, action, args string) {
	fmt.Fprintf(w, `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="%s">%s</u:%sResponse></s:Body></s:Envelope>`,
		action, serviceType, args, action)
}

func fault(w http.ResponseWriter, code int, desc string) {
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`,
		code, desc)
}
