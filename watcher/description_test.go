package watcher

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// Every root description in testdata/routers (see SOURCES.md there): which
// connection services doorman reads, in order, and where it sends requests.
func TestParseDescriptionRealRouters(t *testing.T) {
	type svc struct{ typ, control string }
	tests := []struct {
		file    string
		version int
		want    []svc
		wantErr string
	}{
		{"actiontec-gt784wn-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANPPPConnection:1", "http://192.0.2.1:5431/uuid:70f196f9-33f5-f533-f996-f170f1f9f50002/WANPPPConnection:1"}}, ""},
		{"asus-rtac66u-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:5000/ctl/IPConn"}}, ""},
		{"avm-fritzbox7590-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:5000/igdupnp/control/WANIPConn1"}}, ""},
		{"cisco-cga4131com-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:5000/upnp/control/WANIPConnection0"}}, ""},
		{"ddwrt-tlwr841ndv9-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:5000/control?WANIPConnection"}}, ""},
		{"ddwrt-x86v24-rootdesc.xml", 1, []svc{
			{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:5000/uuid:dead-beef-deadbeef0000/WANIPConnection:1"},
			{"urn:schemas-upnp-org:service:WANPPPConnection:1", "http://192.0.2.1:5000/uuid:dead-beef-deadbeef0000/WANPPPConnection:1"},
		}, ""},
		// libtorrent turned the WANIPConnection control URL into a printf
		// template; the other services are not connection services.
		{"dlink-dir655-rootdesc.xml", 0, nil, "no usable WAN connection service"},
		{"dlink-dir890l-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:49152/soap.cgi?service=WANIPConn1"}}, ""},
		{"dlink-router-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:5678/WANIPConnection"}}, ""},
		{"google-onhub-rootdesc.xml", 2, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:2", "http://192.0.2.1:5000/ctl/IPConn"}}, ""},
		{"huawei-hg531v1-rootdesc.xml", 1, []svc{{"urn:dslforum-org:service:WANPPPConnection:1", "http://192.0.2.1:5000/ctrlt/WANPPPConnection_1"}}, ""},
		{"linksys-wag200g-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANPPPConnection:1", "http://192.0.2.1:49152/upnp/control/WANPPPConn1"}}, ""},
		{"mikrotik-chr7.10-rootdesc.xml", 1, []svc{
			{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:5000/upnp/control/yomkmsnooi/wanipconn-1"},
			{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:5000/upnp/control/xstnsgeuyh/wanipconn-7"},
		}, ""},
		{"miniupnpd-mobileap9x45-rootdesc.xml", 2, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:2", "http://192.0.2.1:5000/ctl/IPConn"}}, ""},
		{"netgear-r7500v2-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:5555/ctl/IPConn"}}, ""},
		{"pfsense-2.5.0-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:5000/ctl/IPConn"}}, ""},
		{"sagemcom-livebox-rootdesc.xml", 2, []svc{{"urn:schemas-upnp-org:service:WANPPPConnection:2", "http://192.0.2.1:5000/87895a19/upnp/control/WANIPConn1"}}, ""},
		{"technicolor-tg389ac-rootdesc.xml", 2, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:2", "http://192.0.2.1:5000/api/control"}}, ""},
		{"zte-f670lv9-rootdesc.xml", 1, []svc{{"urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.0.2.1:52869/upnp/control/WANIPConn1"}}, ""},
	}
	// The description URL is never contacted here: parsing only.
	descURL, _ := url.Parse("http://192.0.2.1:5000/rootDesc.xml")
	c := New(Config{})
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			gw, err := c.parseDescription(descURL, strings.NewReader(readCapture(t, tt.file)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if gw.IGDVersion() != tt.version {
				t.Errorf("IGD version %d, want %d", gw.IGDVersion(), tt.version)
			}
			var got []svc
			for _, s := range gw.Services {
				got = append(got, svc{s.Type, s.ControlURL})
			}
			if len(got) != len(tt.want) {
				t.Fatalf("services\n got %v\nwant %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("service %d\n got %v\nwant %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestResolveURL(t *testing.T) {
	desc, _ := url.Parse("http://192.168.1.1:5000/sub/desc.xml")
	slashBase, _ := url.Parse("http://192.168.1.1:5431/")
	otherHost, _ := url.Parse("http://10.9.9.9:2828")
	tests := []struct {
		name string
		base *url.URL
		ref  string
		want string
		err  bool
	}{
		{"absolute path", desc, "/ctl/IPConn", "http://192.168.1.1:5000/ctl/IPConn", false},
		{"relative path resolves against the description's folder", desc, "ctl/IPConn", "http://192.168.1.1:5000/sub/ctl/IPConn", false},
		{"surrounding whitespace and CRLF", desc, "\r\n  /ctl/IPConn \r\n", "http://192.168.1.1:5000/ctl/IPConn", false},
		{"URLBase with trailing slash", slashBase, "/uuid:1/WANPPPConnection:1", "http://192.168.1.1:5431/uuid:1/WANPPPConnection:1", false},
		{"colon path without a slash is a path", slashBase, "uuid:1/WANIPConnection:1", "http://192.168.1.1:5431/uuid:1/WANIPConnection:1", false},
		{"query string kept", desc, "/soap.cgi?service=WANIPConn1", "http://192.168.1.1:5000/soap.cgi?service=WANIPConn1", false},
		{"absolute URL on another port keeps the port", desc, "http://192.168.1.1:4444/wipconn", "http://192.168.1.1:4444/wipconn", false},
		{"absolute URL on another host is pinned to the router", desc, "http://203.0.113.9:8080/steal", "http://192.168.1.1:8080/steal", false},
		{"stale URLBase host is pinned", pinHost(otherHost, desc), "/upnp/control/x", "http://192.168.1.1:2828/upnp/control/x", false},
		{"other scheme becomes a path on the router", desc, "file:///etc/passwd", "http://192.168.1.1:5000/sub/file:///etc/passwd", false},
		{"printf template refused", desc, "http://127.0.0.1:%d/wipconn", "", true},
		{"empty refused", desc, "  ", "", true},
		{"bad port refused", desc, "http://192.168.1.1:99999/x", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveURL(tt.base, desc, tt.ref)
			if (err != nil) != tt.err {
				t.Fatalf("resolveURL(%q) error = %v, want error %v", tt.ref, err, tt.err)
			}
			if got != tt.want {
				t.Errorf("resolveURL(%q) = %q, want %q", tt.ref, got, tt.want)
			}
		})
	}
}

func TestParseDescriptionHostile(t *testing.T) {
	descURL, _ := url.Parse("http://192.0.2.1:5000/rootDesc.xml")
	c := New(Config{})
	tests := []struct {
		name    string
		body    string
		wantErr error // errors.Is target; errAny for any
		check   func(t *testing.T, gw *Gateway)
	}{
		{"not XML", "<html><body>Login</body>", errAny, nil},
		{"empty", "", errAny, nil},
		{"no connection service", `<root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:schemas-upnp-org:device:MediaServer:1</deviceType><friendlyName>NAS</friendlyName></device></root>`, errAny, nil},
		{"huge", `<root xmlns="urn:schemas-upnp-org:device-1-0"><device><friendlyName>` + strings.Repeat("x", maxDescriptionBytes) + `</friendlyName></device></root>`, ErrResponseTooLarge, nil},
		{"unknown charset", `<?xml version="1.0" encoding="EBCDIC"?><root/>`, errAny, nil},
		{
			"ISO-8859-1 name is decoded",
			"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>" + strings.Replace(miniupnpdDescription[len(`<?xml version="1.0"?>`):], "Test router", "Br\xfccke", 1),
			nil,
			func(t *testing.T, gw *Gateway) {
				if gw.FriendlyName != "Brücke" {
					t.Errorf("FriendlyName = %q, want Brücke", gw.FriendlyName)
				}
			},
		},
		{
			"control characters and markup in names are neutralised",
			strings.Replace(miniupnpdDescription, "Test router", "evil&#x9b;31m\n&lt;b&gt;", 1),
			nil,
			func(t *testing.T, gw *Gateway) {
				if strings.ContainsAny(gw.FriendlyName, "\u009b\n") {
					t.Errorf("FriendlyName %q holds a control character", gw.FriendlyName)
				}
				if !strings.Contains(gw.FriendlyName, "<b>") {
					t.Errorf("FriendlyName %q: markup is kept as text, escaping is the renderer's job", gw.FriendlyName)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw, err := c.parseDescription(descURL, strings.NewReader(tt.body))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatal(err)
			case tt.wantErr == errAny && err == nil:
				t.Fatal("no error")
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, gw)
			}
		})
	}
}

// Whole routers from captures: the description and the SOAP answers they
// sent, including HTTP/1.0 responses without Content-Length.
func TestListMappingsRealRouters(t *testing.T) {
	indexed := func(t *testing.T, prefix string, n int, end string) func(int) (string, bool) {
		bodies := make([]string, n)
		for i := range bodies {
			bodies[i] = readCapture(t, prefix+"-"+string(rune('0'+i))+".xml")
		}
		endBody := readCapture(t, end)
		return func(i int) (string, bool) {
			if i >= 0 && i < n {
				return bodies[i], false
			}
			return endBody, true
		}
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, igd *fakeIGD)
		want    int
		first   Mapping // compared without Router and Service
		service string
	}{
		{
			name: "Cisco CGA4131COM, five entries then 713",
			setup: func(t *testing.T, igd *fakeIGD) {
				igd.description = readCapture(t, "cisco-cga4131com-rootdesc.xml")
				igd.entry = indexed(t, "cisco-cga4131com-soap-getgeneric", 5, "cisco-cga4131com-soap-fault-713.xml")
			},
			want:    5,
			service: "urn:schemas-upnp-org:service:WANIPConnection:1",
		},
		{
			name: "D-Link DIR-890L, query-string control URL, Content-Length with a trailing space",
			setup: func(t *testing.T, igd *fakeIGD) {
				igd.description = readCapture(t, "dlink-dir890l-rootdesc.xml")
				igd.rewriteHosts = []string{"http://10.0.0.1:49152"}
				entries := indexed(t, "dlink-dir890l-soap-getgeneric", 5, "dlink-dir890l-soap-fault-713.xml")
				fault := readCapture(t, "dlink-dir890l-soap-fault-713.http")
				igd.rawSOAP = func(i int) string {
					if i < 5 {
						body, _ := entries(i)
						return "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n" + body
					}
					return fault
				}
			},
			want:    5,
			first:   Mapping{Protocol: "UDP", ExternalPort: 9308, InternalClient: "10.0.0.94", InternalPort: 9308, Enabled: true, Description: "10.0.0.94:9308 to 9308 (UDP)", Origin: OriginUPnP},
			service: "urn:schemas-upnp-org:service:WANIPConnection:1",
		},
		{
			name: "Actiontec GT784WN, PPP only, HTTP/1.0 without Content-Length, m: prefix",
			setup: func(t *testing.T, igd *fakeIGD) {
				igd.rawDesc = readCapture(t, "actiontec-gt784wn-rootdesc.http")
				igd.rewriteHosts = []string{"http://192.168.0.1:5431/"}
				entry := readCapture(t, "actiontec-gt784wn-soap-getgeneric-0.xml")
				fault := readCapture(t, "actiontec-gt784wn-soap-fault-713.http")
				igd.rawSOAP = func(i int) string {
					if i == 0 {
						return "HTTP/1.0 200 OK\r\nCONTENT-TYPE: text/xml\r\n\r\n" + entry
					}
					return fault
				}
			},
			want:    1,
			first:   Mapping{Protocol: "UDP", ExternalPort: 3658, InternalClient: "192.168.0.10", InternalPort: 3658, Enabled: true, Description: "192.168.0.10:3658 to 3658 (UDP)", Origin: OriginUPnP},
			service: "urn:schemas-upnp-org:service:WANPPPConnection:1",
		},
		{
			name: "DD-WRT on TL-WR841ND, empty table ends with 402",
			setup: func(t *testing.T, igd *fakeIGD) {
				igd.description = readCapture(t, "ddwrt-tlwr841ndv9-rootdesc.xml")
				fault := readCapture(t, "ddwrt-tlwr841ndv9-soap-fault-402.xml")
				igd.entry = func(int) (string, bool) { return fault, true }
			},
			want:    0,
			service: "urn:schemas-upnp-org:service:WANIPConnection:1",
		},
		{
			name: "DD-WRT v24 x86, fault without XML declaration",
			setup: func(t *testing.T, igd *fakeIGD) {
				igd.description = readCapture(t, "ddwrt-x86v24-rootdesc.xml")
				fault := readCapture(t, "ddwrt-x86v24-soap-fault-713.xml")
				igd.entry = func(int) (string, bool) { return fault, true }
			},
			want:    0,
			service: "urn:schemas-upnp-org:service:WANIPConnection:1",
		},
		{
			name: "Qualcomm 9x45 MobileAP (miniupnpd IGDv2), empty table",
			setup: func(t *testing.T, igd *fakeIGD) {
				igd.description = readCapture(t, "miniupnpd-mobileap9x45-rootdesc.xml")
				fault := readCapture(t, "miniupnpd-mobileap9x45-soap-fault-713.xml")
				igd.entry = func(int) (string, bool) { return fault, true }
			},
			want:    0,
			service: "urn:schemas-upnp-org:service:WANIPConnection:2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			igd := newFakeIGD(t)
			tt.setup(t, igd)
			c := testClient(t, Config{})
			gw := gatewayOf(t, c, igd.URL())
			if gw.Services[0].Type != tt.service {
				t.Errorf("first service %s, want %s", gw.Services[0].Type, tt.service)
			}
			ms, err := c.ListMappings(context.Background(), gw)
			if err != nil {
				t.Fatalf("ListMappings: %v", err)
			}
			if len(ms) != tt.want {
				t.Fatalf("got %d mappings, want %d: %+v", len(ms), tt.want, ms)
			}
			if tt.first.Protocol != "" {
				got := ms[0]
				got.Router, got.Service = "", ""
				if got != tt.first {
					t.Errorf("first mapping\n got %+v\nwant %+v", got, tt.first)
				}
			}
		})
	}
}
