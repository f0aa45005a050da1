package watcher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// decodeEntry decodes a GetGenericPortMappingEntry answer as the
// connection does.
func decodeEntry(body []byte) (PortMappingEntry, bool) {
	var out entryAnswer
	fault, err := decodeSOAPBody(newSOAPDecoder(body), &out)
	if err != nil || fault != nil {
		return PortMappingEntry{}, false
	}
	return out.entry(), true
}

// lab231Entry is miniupnpd 2.3.1's answer in the lab, byte for byte.
const lab231Entry = `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetGenericPortMappingEntryResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewRemoteHost></NewRemoteHost><NewExternalPort>20000</NewExternalPort><NewProtocol>UDP</NewProtocol><NewInternalPort>20000</NewInternalPort><NewInternalClient>192.168.77.21</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>bench udp 20000</NewPortMappingDescription><NewLeaseDuration>86373</NewLeaseDuration></u:GetGenericPortMappingEntryResponse></s:Body></s:Envelope>`

// The ways routers write the same answer all read as that answer; what is
// not a SOAP answer is refused.
func TestDecodeEntryAnswer(t *testing.T) {
	entry := func(mod func(string) string) string { return mod(lab231Entry) }
	desc := func(d string) func(string) string {
		return func(s string) string { return strings.Replace(s, "bench udp 20000", d, 1) }
	}
	tests := []struct {
		name string
		body string
		ok   bool
		desc string // the description read, when ok
	}{
		{"miniupnpd 2.3.1", lab231Entry, true, "bench udp 20000"},
		{"escaped description", entry(desc("a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;")), true, `a <b> & "c" 'd'`},
		{"empty field as <x/>", entry(func(s string) string {
			return strings.Replace(s, "<NewRemoteHost></NewRemoteHost>", "<NewRemoteHost/>", 1)
		}), true, "bench udp 20000"},
		{"unknown field", entry(func(s string) string {
			return strings.Replace(s, "<NewEnabled>", "<NewExtra>x</NewExtra><NewEnabled>", 1)
		}), true, "bench udp 20000"},
		{"prefixed fields", entry(func(s string) string {
			return strings.NewReplacer("<NewProtocol>", "<u:NewProtocol>", "</NewProtocol>", "</u:NewProtocol>").Replace(s)
		}), true, "bench udp 20000"},
		{"ISO-8859-1", strings.Replace(entry(desc("K\xfcche")), `<?xml version="1.0"?>`, `<?xml version="1.0" encoding="ISO-8859-1"?>`, 1), true, "Küche"},
		{"comment", entry(func(s string) string { return strings.Replace(s, "<NewEnabled>", "<!-- x --><NewEnabled>", 1) }), true, "bench udp 20000"},
		{"CDATA", entry(desc("<![CDATA[bench]]>")), true, "bench"},
		{"character reference", entry(desc("&#65;")), true, "A"},
		{"SOAP header", entry(func(s string) string { return strings.Replace(s, "<s:Body>", "<s:Header/><s:Body>", 1) }), true, "bench udp 20000"},
		{"UTF-8 description", entry(desc("Wohnzimmer-TV ünd 🎮")), true, "Wohnzimmer-TV ünd 🎮"},

		{"fault", readCapture(t, "cisco-cga4131com-soap-fault-713.xml"), false, ""},
		{"Body in another namespace", entry(func(s string) string {
			return strings.Replace(s, `xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"`, `xmlns:s="urn:other"`, 1)
		}), false, ""},
		{"mismatched end tag", entry(func(s string) string { return strings.Replace(s, "</NewProtocol>", "</NewProto>", 1) }), false, ""},
		{"cut short", lab231Entry[:300], false, ""},
		{"empty", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := decodeEntry([]byte(tt.body))
			if ok != tt.ok {
				t.Fatalf("decoded: %v, want %v (%+v)", ok, tt.ok, e)
			}
			if ok && (e.Description != tt.desc || e.ExternalPort != "20000" || e.Protocol != "UDP") {
				t.Errorf("read %+v, want port 20000 UDP and description %q", e, tt.desc)
			}
		})
	}
}

// Every captured GetGenericPortMappingEntry answer decodes to an entry.
func TestDecodeEntryRouterCaptures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "routers", "*-soap-getgeneric-*.xml"))
	if len(files) == 0 {
		t.Fatal("no captures")
	}
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := decodeEntry(body); !ok || e.ExternalPort == "" {
			t.Errorf("%s: decoded %v %+v", filepath.Base(name), ok, e)
		}
	}
}
