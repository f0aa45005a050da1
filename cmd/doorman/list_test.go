package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/watcher"
)

// referenceMappingsJSON is what writeMappingsJSON wrote with encoding/json.
func referenceMappingsJSON(t testing.TB, ms []watcher.Mapping) []byte {
	out := make([]mappingJSON, 0, len(ms))
	for _, m := range ms {
		out = append(out, mappingJSON{Router: m.Router, Protocol: m.Protocol, ExternalPort: m.ExternalPort, RemoteHost: m.RemoteHost,
			InternalClient: m.InternalClient, InternalPort: m.InternalPort, Enabled: m.Enabled, Description: m.Description,
			LeaseDuration: int64(m.LeaseDuration / time.Second), Origin: string(m.Origin)})
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The documented shape, byte for byte: names, order, indentation, an empty
// list as [].
func TestMappingsJSONShape(t *testing.T) {
	m := watcher.Mapping{Router: "http://192.168.77.1:5000/rootDesc.xml", Service: "urn:schemas-upnp-org:service:WANIPConnection:2",
		Protocol: "UDP", ExternalPort: 51413, RemoteHost: "10.0.0.1", InternalClient: "192.168.77.21", InternalPort: 51413, Enabled: true,
		Description: "Transmission <b> & co", LeaseDuration: 3600 * time.Second, Origin: watcher.OriginUPnP}
	for _, tt := range []struct {
		ms   []watcher.Mapping
		want string
	}{
		{nil, "[]\n"},
		{[]watcher.Mapping{m}, `[
  {
    "router": "http://192.168.77.1:5000/rootDesc.xml",
    "protocol": "UDP",
    "external_port": 51413,
    "remote_host": "10.0.0.1",
    "internal_client": "192.168.77.21",
    "internal_port": 51413,
    "enabled": true,
    "description": "Transmission \u003cb\u003e \u0026 co",
    "lease_duration": 3600,
    "origin": "` + string(watcher.OriginUPnP) + `"
  }
]
`},
	} {
		var got bytes.Buffer
		if err := writeMappingsJSON(&got, tt.ms); err != nil {
			t.Fatal(err)
		}
		if got.String() != tt.want {
			t.Errorf("got\n%s\nwant\n%s", got.String(), tt.want)
		}
	}
}

func TestMappingsJSONMatchesEncodingJSON(t *testing.T) {
	m := watcher.Mapping{Router: "http://192.168.77.1:5000/rootDesc.xml", Service: "urn:schemas-upnp-org:service:WANIPConnection:2",
		Protocol: "UDP", ExternalPort: 51413, InternalClient: "192.168.77.21", InternalPort: 51413, Enabled: true,
		Description: "Transmission at 51413", LeaseDuration: 3600 * time.Second, Origin: watcher.OriginUPnP}
	hostile := m
	hostile.Enabled = false
	hostile.ExternalPort, hostile.InternalPort, hostile.LeaseDuration = 65535, 1, 0
	hostile.Description = "<script>\"a\\b\" & \u2028\u2029 \x00\x1f\x7f \b\f\n\r\t ünï 🎮 \xff\xfe end"
	hostile.RemoteHost = "10.0.0.1"
	hostile.Origin = watcher.OriginNATPMP
	tests := []struct {
		name string
		ms   []watcher.Mapping
	}{
		{"none", nil},
		{"one", []watcher.Mapping{m}},
		{"hostile text", []watcher.Mapping{m, hostile, m}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got bytes.Buffer
			if err := writeMappingsJSON(&got, tt.ms); err != nil {
				t.Fatal(err)
			}
			if want := referenceMappingsJSON(t, tt.ms); !bytes.Equal(got.Bytes(), want) {
				t.Errorf("got\n%s\nwant\n%s", got.Bytes(), want)
			}
		})
	}
}
