package watcher

import (
	"strings"
	"testing"
)

func TestOriginFromDescription(t *testing.T) {
	tests := []struct {
		desc string
		want Origin
	}{
		{"NAT-PMP 8000 tcp", OriginNATPMP},
		{"NAT-PMP 51413 udp", OriginNATPMP},
		{"PCP 8000 tcp", OriginPCP},
		{"libminiupnpc", OriginUPnP},
		{"", OriginUPnP},
		{"NAT-PMP 8000 tcp extra", OriginUPnP},
		{"NAT-PMP 123456 tcp", OriginUPnP},
		{"nat-pmp 8000 tcp", OriginUPnP},
		{"Transmission at 51413", OriginUPnP},
	}
	for _, tt := range tests {
		if got := OriginFromDescription(tt.desc); got != tt.want {
			t.Errorf("OriginFromDescription(%q) = %q, want %q", tt.desc, got, tt.want)
		}
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"<b>kept</b>", 20, "<b>kept</b>"},
		{"a\x1b[31mb", 10, "a\ufffd[31mb"},
		{"bad\xff\xfeutf8", 20, "bad\ufffd\ufffdutf8"},
		{"line\nbreak\r", 20, "line\ufffdbreak\ufffd"},
		{"csi\u009b", 10, "csi\ufffd"},
		{"bidi\u2028", 10, "bidi\ufffd"},
		{"Grüße", 3, "Grü…"},
		{strings.Repeat("x", 10000), 256, strings.Repeat("x", 256) + "…"},
	}
	for _, tt := range tests {
		if got := cleanText(tt.in, tt.max); got != tt.want {
			t.Errorf("cleanText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
