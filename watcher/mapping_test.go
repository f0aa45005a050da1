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
		// natpmp.c: "NAT-PMP %hu %s".
		{"NAT-PMP 8000 tcp", OriginNATPMP},
		{"NAT-PMP 51413 udp", OriginNATPMP},
		{"NAT-PMP 0 tcp", OriginNATPMP},
		{"NAT-PMP 65535 udp", OriginNATPMP},
		{"NAT-PMP 8000 tcp extra", OriginUPnP},
		{"NAT-PMP 123456 tcp", OriginUPnP},
		{"NAT-PMP 8000 TCP", OriginUPnP},
		{"NAT-PMP  8000 tcp", OriginUPnP},
		{"NAT-PMP 8000", OriginUPnP},
		{"nat-pmp 8000 tcp", OriginUPnP},
		{" NAT-PMP 8000 tcp", OriginUPnP},
		// pcpserver.c since 1.38: "PCP %s %08x%08x%08x", MAP or PEER and the nonce.
		{"PCP MAP bba0b0bacf01c551b3a23cbb", OriginPCP},
		{"PCP PEER 0123456789abcdef01234567", OriginPCP},
		{"PCP MAP 000000000000000000000000", OriginPCP},  // PCP version 1: no nonce
		{"PCP MAP BBA0B0BACF01C551B3A23CBB", OriginUPnP}, // %08x is lowercase
		{"PCP MAP bba0b0bacf01c551b3a23cb", OriginUPnP},  // 23 digits
		{"PCP MAP bba0b0bacf01c551b3a23cbbb", OriginUPnP},
		{"PCP MAP bba0b0bacf01c551b3a23cbg", OriginUPnP},
		{"PCP ANNOUNCE bba0b0bacf01c551b3a23cbb", OriginUPnP}, // never maps
		{"PCP map bba0b0bacf01c551b3a23cbb", OriginUPnP},
		{"PCP MAP", OriginUPnP},
		{"PCP MAP bba0b0bacf01c551b3a23cbb torrent", OriginUPnP},
		// pcpserver.c 1.12 (miniupnpd 1.8 snapshots): "PCP %hu %s".
		{"PCP 8000 tcp", OriginPCP},
		{"PCP 8000 udp", OriginPCP},
		{"PCP 8000 sctp", OriginUPnP},
		// Apps' own descriptions.
		{"libminiupnpc", OriginUPnP},
		{"", OriginUPnP},
		{"Transmission at 51413", OriginUPnP},
		{"syncthing-59100", OriginUPnP},
		{"PCP", OriginUPnP},
		{"NAT-PMP", OriginUPnP},
		// A UPnP client may write miniupnpd's own text: it is then listed
		// as PCP or NAT-PMP. That is why the origin is only a hint.
		{"PCP MAP 0123456789abcdef01234567", OriginPCP},
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
