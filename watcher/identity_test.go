package watcher

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/internal/fakefritz"
)

func TestNormalizeURL(t *testing.T) {
	const want = "http://192.168.77.1:5000/rootDesc.xml"
	tests := []struct {
		in, want string
	}{
		{"http://192.168.77.1:5000/rootDesc.xml", want},
		{"HTTP://192.168.77.1:5000/rootDesc.xml", want},
		{"http://192.168.77.1:05000/rootDesc.xml", want},
		{"http://192.168.77.1:005000/rootDesc.xml", want},
		{"http://192.168.77.1:5000//rootDesc.xml", want},
		{"http://192.168.77.1:5000/./rootDesc.xml", want},
		{"http://192.168.77.1:5000/x/../rootDesc.xml", want},
		{"http://192.168.77.1:5000/rootDesc.xml?x", want},
		{"http://192.168.77.1:5000/rootDesc.xml#frag", want},
		{"http://[::ffff:192.168.77.1]:5000/rootDesc.xml", want},
		{" http://192.168.77.1:5000/rootDesc.xml\r\n", want},
		// The path is case-sensitive; hosts are not.
		{"http://Router.LAN:5000/rootDesc.xml", "http://router.lan:5000/rootDesc.xml"},
		{"http://192.168.77.1:5000/ROOTDESC.xml", "http://192.168.77.1:5000/ROOTDESC.xml"},
		{"http://192.168.77.1:80/rootDesc.xml", "http://192.168.77.1/rootDesc.xml"},
		{"https://192.168.77.1:443/rootDesc.xml", "https://192.168.77.1/rootDesc.xml"},
		{"http://192.168.77.1:443/rootDesc.xml", "http://192.168.77.1:443/rootDesc.xml"},
		{"http://192.168.77.1", "http://192.168.77.1/"},
		{"http://[fe80::1]:5000/d.xml", "http://[fe80::1]:5000/d.xml"},
		{"http://192.168.77.1:5001/rootDesc.xml", "http://192.168.77.1:5001/rootDesc.xml"},
		// Not description URLs.
		{"ftp://192.168.77.1/rootDesc.xml", ""},
		{"http:0", ""},
		{"http:///rootDesc.xml", ""},
		{"http://192.168.77.1:0/rootDesc.xml", ""},
		{"http://192.168.77.1:65536/rootDesc.xml", ""},
		{"uuid:75802409@192.168.77.1", ""},
	}
	for _, tt := range tests {
		got, err := normalizeURL(tt.in)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("normalizeURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestRouterIdentity(t *testing.T) {
	tests := []struct {
		udn, host string
		id        string
	}{
		{"uuid:75802409-BCCB-40E7", "192.168.77.1", "uuid:75802409-bccb-40e7@192.168.77.1"},
		{" uuid:a ", "::ffff:192.168.77.1", "uuid:a@192.168.77.1"},
		{"uuid:a", "[fe80::1]", "uuid:a@fe80::1"},
		{"uuid:a", "Fritz.Box", "uuid:a@fritz.box"},
		{"", "192.168.77.1", "@192.168.77.1"},
	}
	for _, tt := range tests {
		id := RouterID(tt.udn, tt.host)
		if id != tt.id {
			t.Errorf("RouterID(%q, %q) = %q, want %q", tt.udn, tt.host, id, tt.id)
		}
		if h := RouterHost(id); h != normalizeHost(tt.host) {
			t.Errorf("RouterHost(%q) = %q", id, h)
		}
	}
	for in, want := range map[string]string{
		"http://192.168.77.1:5000/rootDesc.xml":      "192.168.77.1",
		"http://[::ffff:192.168.77.1]:5000/rootDesc": "192.168.77.1",
		"uuid:a@192.168.77.1":                        "192.168.77.1",
		"no host":                                    "no host",
	} {
		if got := RouterHost(in); got != want {
			t.Errorf("RouterHost(%q) = %q, want %q", in, got, want)
		}
	}
	if got := RouterUDN("uuid:a@192.168.77.1"); got != "uuid:a" {
		t.Errorf("RouterUDN = %q", got)
	}
	if got := RouterUDN("http://u@192.168.77.1/"); got != "" {
		t.Errorf("RouterUDN of a URL = %q", got)
	}
}

// fritzBox starts the stand-in FRITZ!Box with the real 7590 igddesc.xml.
func fritzBox(t *testing.T, rows ...fakefritz.Row) *fakefritz.Box {
	b := fakefritz.New(t, []byte(readCapture(t, "avm-fritzbox7590-rootdesc.xml")))
	b.SetTable(rows...)
	return b
}

func fritzRows() []fakefritz.Row {
	return []fakefritz.Row{
		{Protocol: "TCP", ExternalPort: 32400, InternalClient: "192.168.178.20", InternalPort: 32400, Description: "Plex"},
		{Protocol: "UDP", ExternalPort: 51413, InternalClient: "192.168.178.21", InternalPort: 51413, Description: "Transmission"},
		{Protocol: "UDP", ExternalPort: 3074, InternalClient: "192.168.178.22", InternalPort: 3074, Description: "Xbox"},
	}
}

func TestFritzBoxTwinUDNs(t *testing.T) {
	// The pair cannot be told by a UDN: each description names its own.
	b := fritzBox(t)
	c := testClient(t, Config{})
	igd1, igd2 := gatewayOf(t, c, b.IGD1URL()), gatewayOf(t, c, b.IGD2URL())
	if sharesUDN(igd1, igd2) {
		t.Errorf("the twin shares a UDN with igddesc.xml: %v %v", igd1.udns, igd2.udns)
	}
	if igd1.ID == igd2.ID {
		t.Errorf("both descriptions have the identity %s", igd1.ID)
	}
	if !twinDescriptions(igd1, igd2) || !twinDescriptions(igd2, igd1) {
		t.Errorf("igddesc.xml and igd2desc.xml are not twins: %+v %+v", igd1.Services[0], igd2.Services[0])
	}
}

func TestMergeGateways(t *testing.T) {
	b := fritzBox(t)
	other := newTableIGD(t) // a miniupnpd IGD:2 on another port of 127.0.0.1
	c := testClient(t, Config{})
	igd1, igd2 := gatewayOf(t, c, b.IGD1URL()), gatewayOf(t, c, b.IGD2URL())
	mini := gatewayOf(t, c, other.URL())
	miniAgain := gatewayOf(t, c, strings.Replace(other.URL(), "/rootDesc.xml", "//./rootDesc.xml?x", 1))
	elsewhere := *mini
	elsewhere.URL = strings.Replace(mini.URL, "127.0.0.1", "[::1]", 1)
	elsewhere.ID = RouterID(mini.udns[0], "::1")
	tests := []struct {
		name string
		in   []*Gateway
		want []string // URLs of what is watched
		twin []string // twins of the first
	}{
		{"FRITZ!Box IGD:1 then IGD:2", []*Gateway{igd1, igd2}, []string{b.IGD2URL()}, []string{b.IGD1URL()}},
		{"FRITZ!Box IGD:2 then IGD:1", []*Gateway{igd2, igd1}, []string{b.IGD2URL()}, []string{b.IGD1URL()}},
		{"FRITZ!Box IGD:1 alone", []*Gateway{igd1}, []string{b.IGD1URL()}, nil},
		{"FRITZ!Box IGD:1 twice", []*Gateway{igd1, igd2, igd1}, []string{b.IGD2URL()}, []string{b.IGD1URL()}},
		{"one description, two spellings", []*Gateway{mini, miniAgain}, []string{mini.URL}, nil},
		{"two routers on one host", []*Gateway{igd2, mini}, []string{b.IGD2URL(), mini.URL}, nil},
		{"one description on two hosts", []*Gateway{mini, &elsewhere}, []string{mini.URL, elsewhere.URL}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeGateways(tt.in)
			var urls []string
			for _, g := range got {
				urls = append(urls, g.URL)
			}
			if !slices.Equal(urls, tt.want) {
				t.Fatalf("watched %v, want %v", urls, tt.want)
			}
			if !slices.Equal(got[0].Twins, tt.twin) {
				t.Errorf("twins %v, want %v", got[0].Twins, tt.twin)
			}
			if len(tt.twin) > 0 {
				// The IGD:1 service's shares are in the IGD:2 service's
				// table.
				svc := got[0].Services[0]
				if !slices.Equal(svc.Twins, []string{ipConn1}) || got[0].service(ipConn1) != svc {
					t.Errorf("service %s has twins %v", svc.Type, svc.Twins)
				}
				// The twin's announcements are the router's.
				for _, u := range igd1.udns {
					if !slices.Contains(got[0].udns, u) {
						t.Errorf("merged gateway lacks the twin's UDN %s", u)
					}
				}
				if !got[0].isRouter(igd1.ID, false) || !got[0].isRouter(igd2.ID, false) {
					t.Errorf("merged gateway %s is not named by both identities", got[0].ID)
				}
			}
		})
	}
}

// TestFritzBoxListedOnce: the FRITZ!Box announces igddesc.xml and
// igd2desc.xml; doorman reads the one table once, through IGD:2, both when
// discovery finds the pair and when both are configured.
func TestFritzBoxListedOnce(t *testing.T) {
	b := fritzBox(t, fritzRows()...)
	for _, how := range []string{"discovered", "configured"} {
		t.Run(how, func(t *testing.T) {
			var c *Client
			if how == "configured" {
				c = testClient(t, Config{IGDURLs: []string{b.IGD1URL(), b.IGD2URL()}})
			} else {
				c = testClient(t, Config{DiscoveryTimeout: time.Second})
				c.defaultGateways = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil }
				c.search = searchAnswering(nil,
					timedAnswer{location: b.IGD1URL()},
					timedAnswer{after: 5 * time.Millisecond, st: searchIGDv2, location: b.IGD2URL()})
			}
			gws, err := c.Gateways(context.Background())
			if err != nil || len(gws) != 1 {
				t.Fatalf("Gateways = %d gateways, %v; want the one FRITZ!Box", len(gws), err)
			}
			if gws[0].URL != b.IGD2URL() || gws[0].IGDVersion() != 2 {
				t.Errorf("watching %s (IGD:%d), want igd2desc.xml", gws[0].URL, gws[0].IGDVersion())
			}
			before := b.Requests("POST " + fakefritz.IGD1Control + "#GetGenericPortMappingEntry")
			ms, err := c.ListMappings(context.Background(), gws[0])
			if err != nil || len(ms) != len(fritzRows()) {
				t.Fatalf("ListMappings = %d mappings, %v; want %d", len(ms), err, len(fritzRows()))
			}
			if got := b.Requests("POST " + fakefritz.IGD1Control + "#GetGenericPortMappingEntry"); got != before {
				t.Errorf("the IGD:1 service was listed too (%d requests)", got-before)
			}
		})
	}
}

// TestWatchFritzBoxOnce: the watcher watches the pair as one router: one
// service, each share once, and its twin's announcements are the router's.
func TestWatchFritzBoxOnce(t *testing.T) {
	b := fritzBox(t, fritzRows()...)
	h := startWatchURLs(t, []string{b.IGD1URL(), b.IGD2URL()}, WatchConfig{}, nil)
	s := h.next(3*time.Second, "start", reason(ReasonStart))
	if s.Service.Type != "urn:schemas-upnp-org:service:WANIPConnection:2" || len(s.Mappings) != len(fritzRows()) {
		t.Errorf("first listing: %s, %d mappings", s.Service.Type, len(s.Mappings))
	}
	h.quiet(300*time.Millisecond, "one table is listed once")
	if st := h.w.Status(); len(st) != 1 {
		t.Errorf("watching %d services, want 1: %+v", len(st), st)
	}
	if gws := h.w.Gateways(); len(gws) != 1 {
		t.Errorf("watching %d routers, want 1", len(gws))
	}
	if got := b.Requests("POST " + fakefritz.IGD1Control + "#GetGenericPortMappingEntry"); got != 0 {
		t.Errorf("the IGD:1 service was listed %d times", got)
	}
	for _, m := range s.Mappings {
		if m.Router != s.Gateway.ID {
			t.Errorf("mapping on %s, want %s", m.Router, s.Gateway.ID)
		}
	}
	// A share listed through the IGD:1 description (by an older doorman)
	// is closed on the router and service that are watched.
	igd1 := gatewayOf(t, testClient(t, Config{}), b.IGD1URL())
	m := s.Mappings[0]
	m.Router, m.Service = igd1.ID, ipConn1
	if err := h.w.DeleteListedMapping(context.Background(), m); err != nil {
		t.Fatalf("DeleteListedMapping under the IGD:1 identity: %v", err)
	}
	if got := len(b.Rows()); got != len(fritzRows())-1 {
		t.Errorf("%d rows left, want %d", got, len(fritzRows())-1)
	}
	if got := b.Requests("POST " + fakefritz.IGD2Control + "#DeletePortMapping"); got != 1 {
		t.Errorf("%d deletes through IGD:2, want 1", got)
	}
	// And the service is listed again at once.
	h.next(3*time.Second, "refresh after the delete", reason(ReasonRefresh))
}

// startWatchURLs runs a Watcher over the routers at urls (both
// descriptions of a FRITZ!Box, say); startWatch uses it too.
func startWatchURLs(t *testing.T, urls []string, cfg WatchConfig, adjust func(*Watcher)) *watchHarness {
	t.Helper()
	h := &watchHarness{t: t, snaps: make(chan Snapshot, 256), ssdp: make(chan net.Addr, 4), done: make(chan error, 1)}
	c := testClient(t, Config{IGDURLs: urls, RequestTimeout: time.Second})
	if cfg.OnSnapshot == nil {
		cfg.OnSnapshot = func(ctx context.Context, s Snapshot) { h.snaps <- s }
	}
	h.w = c.NewWatcher(cfg)
	h.w.listenSSDP = func(local netip.Addr) (net.PacketConn, error) {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err == nil {
			h.ssdp <- pc.LocalAddr()
		}
		return pc, err
	}
	if adjust != nil {
		adjust(h.w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() { h.done <- h.w.Run(ctx) }()
	t.Cleanup(func() { h.shutdown() })
	return h
}
