package watcher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScanEntryResponse(t *testing.T) {
	entry := func(mod func(string) string) string { return mod(lab231Entry) }
	tests := []struct {
		name string
		body string
		fast bool // the fast path takes it; otherwise encoding/xml must
	}{
		{"miniupnpd 2.3.1", lab231Entry, true},
		{"escaped description", entry(func(s string) string {
			return strings.Replace(s, "bench udp 20000", "a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;", 1)
		}), true},
		{"empty field as <x/>", entry(func(s string) string {
			return strings.Replace(s, "<NewRemoteHost></NewRemoteHost>", "<NewRemoteHost/>", 1)
		}), true},
		{"unknown field", entry(func(s string) string {
			return strings.Replace(s, "<NewEnabled>", "<NewExtra>x</NewExtra><NewEnabled>", 1)
		}), true},
		{"prefixed fields", entry(func(s string) string {
			return strings.NewReplacer("<NewProtocol>", "<u:NewProtocol>", "</NewProtocol>", "</u:NewProtocol>").Replace(s)
		}), true},
		{"UTF-8 declared, spaces in tags", entry(func(s string) string {
			return strings.NewReplacer(`<?xml version="1.0"?>`, `<?xml version='1.0' encoding="UTF-8" standalone="yes"?>`, "</NewProtocol>", "</NewProtocol >").Replace(s)
		}), true},
		{"no declaration, default namespace Body", `<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><R><NewExternalPort>1</NewExternalPort></R></Body></Envelope>`, true},
		{"UTF-8 description", entry(func(s string) string { return strings.Replace(s, "bench udp 20000", "Wohnzimmer-TV ünd 🎮", 1) }), true},

		// Everything below is left to encoding/xml.
		{"fault", readCapture(t, "cisco-cga4131com-soap-fault-713.xml"), false},
		{"ISO-8859-1", entry(func(s string) string {
			return strings.Replace(s, `<?xml version="1.0"?>`, `<?xml version="1.0" encoding="ISO-8859-1"?>`, 1)
		}), false},
		{"comment", entry(func(s string) string { return strings.Replace(s, "<NewEnabled>", "<!-- x --><NewEnabled>", 1) }), false},
		{"CDATA", entry(func(s string) string { return strings.Replace(s, "bench udp 20000", "<![CDATA[bench]]>", 1) }), false},
		{"character reference", entry(func(s string) string { return strings.Replace(s, "bench udp 20000", "&#65;", 1) }), false},
		{"unknown entity", entry(func(s string) string { return strings.Replace(s, "bench udp 20000", "&nbsp;", 1) }), false},
		{"CR LF in text", entry(func(s string) string { return strings.Replace(s, "bench udp 20000", "a\r\nb", 1) }), false},
		{"field twice", entry(func(s string) string {
			return strings.Replace(s, "<NewEnabled>1</NewEnabled>", "<NewEnabled>1</NewEnabled><NewEnabled>0</NewEnabled>", 1)
		}), false},
		{"attribute on a field", entry(func(s string) string { return strings.Replace(s, "<NewEnabled>", `<NewEnabled dt="boolean">`, 1) }), false},
		{"nested element", entry(func(s string) string { return strings.Replace(s, "bench udp 20000", "<b>x</b>", 1) }), false},
		{"SOAP header", entry(func(s string) string { return strings.Replace(s, "<s:Body>", "<s:Header/><s:Body>", 1) }), false},
		{"Body in another namespace", entry(func(s string) string {
			return strings.Replace(s, `xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"`, `xmlns:s="urn:other"`, 1)
		}), false},
		{"Body with the xmlns prefix", `<Envelope xmlns:xmlns="http://schemas.xmlsoap.org/soap/envelope/"><xmlns:Body><R><NewExternalPort>1</NewExternalPort></R></xmlns:Body></Envelope>`, false},
		{"Body with the xml prefix", `<Envelope><xml:Body xmlns:xml="http://schemas.xmlsoap.org/soap/envelope/"><R><NewExternalPort>1</NewExternalPort></R></xml:Body></Envelope>`, false},
		{"mismatched end tag", entry(func(s string) string { return strings.Replace(s, "</NewProtocol>", "</NewProto>", 1) }), false},
		{"]]> in text", entry(func(s string) string { return strings.Replace(s, "bench udp 20000", "a]]>b", 1) }), false},
		{"control character", entry(func(s string) string { return strings.Replace(s, "bench udp 20000", "a\x01b", 1) }), false},
		{"control character in an attribute", entry(func(s string) string {
			return strings.Replace(s, `s:encodingStyle="http://`, "s:encodingStyle=\"\x1b", 1)
		}), false},
		{"invalid UTF-8", entry(func(s string) string { return strings.Replace(s, "bench udp 20000", "a\xffb", 1) }), false},
		{"cut short", lab231Entry[:300], false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fast := scanEntryResponse([]byte(tt.body))
			if fast != tt.fast {
				t.Errorf("fast path taken: %v, want %v", fast, tt.fast)
			}
			if !fast {
				return
			}
			want, ok := decodeEntry([]byte(tt.body))
			if !ok {
				t.Fatal("the fast path took an answer encoding/xml refuses")
			}
			if got != want {
				t.Errorf("fast path read %+v\nencoding/xml reads %+v", got, want)
			}
		})
	}
}

// Every captured GetGenericPortMappingEntry answer goes the fast path and
// reads the same as with encoding/xml.
func TestScanEntryResponseRouterCaptures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "routers", "*-soap-getgeneric-*.xml"))
	if len(files) == 0 {
		t.Fatal("no captures")
	}
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, fast := scanEntryResponse(body)
		want, ok := decodeEntry(body)
		if !fast || !ok || got != want {
			t.Errorf("%s: fast %v %+v, encoding/xml %v %+v", filepath.Base(name), fast, got, ok, want)
		}
	}
}

// FuzzScanEntryResponse holds the fast path to encoding/xml: whatever it
// takes, encoding/xml must take too and read the same.
func FuzzScanEntryResponse(f *testing.F) {
	addCaptures(f, "*-soap-*.xml")
	f.Add([]byte(lab231Entry))
	f.Add([]byte(entryBody(ipConn2, row("TCP", 80, "10.0.0.2", 80, "a &lt;b&gt; &amp;"))))
	f.Add([]byte(`<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><R><NewExternalPort/></R></Body></Envelope>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, fast := scanEntryResponse(body)
		if !fast {
			return
		}
		want, ok := decodeEntry(body)
		if !ok {
			t.Fatalf("the fast path took an answer encoding/xml refuses: %.300q", body)
		}
		if got != want {
			t.Fatalf("fast path read %+v, encoding/xml %+v, from %.300q", got, want, body)
		}
	})
}

func BenchmarkScanEntryResponse(b *testing.B) {
	body := []byte(lab231Entry)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			scanEntryResponse(body)
		}
	})
	b.Run("encoding/xml", func(b *testing.B) {
		for b.Loop() {
			decodeEntry(body)
		}
	})
}
