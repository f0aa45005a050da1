package watcher

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// addCaptures seeds a fuzz target with the real router files matching glob.
func addCaptures(f *testing.F, glob string) {
	files, err := filepath.Glob(filepath.Join("testdata", "routers", glob))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files for %s", glob)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// A router's SOAP answer must never panic doorman, whatever it holds, and a
// row that parses must be one doorman can show.
func FuzzDecodeSOAPBody(f *testing.F) {
	addCaptures(f, "*-soap-*.xml")
	f.Add([]byte(entryBody(ipConn2, row("TCP", 80, "10.0.0.2", 80, "a &lt;b&gt;"))))
	f.Fuzz(func(t *testing.T, body []byte) {
		e, decoded := decodeEntry(body)
		if !decoded {
			return
		}
		m, ok, err := parseEntry(e)
		if err != nil || !ok {
			return
		}
		for _, s := range []string{m.Description, m.InternalClient, m.RemoteHost} {
			if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\x1b\n\r\u009b") {
				t.Errorf("unsafe text %q reached a mapping", s)
			}
		}
		if m.ExternalPort == 0 || (m.Protocol != "TCP" && m.Protocol != "UDP") {
			t.Errorf("placeholder or bad row accepted: %+v", m)
		}
	})
}

func FuzzParseProcNetRoute(f *testing.F) {
	f.Add([]byte("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t014DA8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		gws, err := parseProcNetRoute(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, g := range gws {
			if !g.Is4() || g.IsUnspecified() {
				t.Errorf("bad gateway %s", g)
			}
		}
	})
}

// A router's (or anyone's) NOTIFY body must never panic doorman, and what
// it yields goes to logs: bounded and printable.
func FuzzParseNotify(f *testing.F) {
	f.Add([]byte(`<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property><PortMappingNumberOfEntries>1</PortMappingNumberOfEntries></e:property></e:propertyset>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		vars, err := parseNotify(body)
		if err != nil {
			return
		}
		if len(vars) > maxNotifyVars {
			t.Errorf("%d variables kept", len(vars))
		}
		for k, v := range vars {
			for _, s := range []string{k, v} {
				if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\x1b\n\r\u009b") || utf8.RuneCountInString(s) > 257 {
					t.Errorf("unsafe text %q", s)
				}
			}
		}
	})
}

func FuzzParseSSDPNotify(f *testing.F) {
	addCaptures(f, "*-ssdp-*.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseSSDPNotify(b)
		if err != nil {
			return
		}
		switch m.NTS {
		case "ssdp:alive", "ssdp:byebye", "ssdp:update":
		default:
			t.Errorf("NTS %q accepted", m.NTS)
		}
		for _, s := range []string{m.NT, m.USN, m.Location, m.BootID, m.NextBootID} {
			if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\r\n") {
				t.Errorf("unsafe text %q", s)
			}
		}
	})
}

// A root description comes from whatever answers at the gateway's address;
// it must never panic doorman, and every control URL it yields must stay on
// the description's host (another port is allowed: routers use them).
func FuzzParseDescription(f *testing.F) {
	addCaptures(f, "*rootdesc*.xml")
	c := New(Config{})
	descURL, _ := url.Parse("http://192.168.1.1:5000/rootDesc.xml")
	f.Fuzz(func(t *testing.T, data []byte) {
		gw, err := c.parseDescription(descURL, bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, s := range gw.Services {
			u, err := url.Parse(s.ControlURL)
			if err != nil || u.Hostname() != descURL.Hostname() {
				t.Errorf("control URL %q leaves %s", s.ControlURL, descURL.Host)
			}
		}
	})
}
