package watcher

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseProcNetRoute(t *testing.T) {
	// The file holds the address bytes as a host-order number; build the
	// lines the way this machine's kernel would print them.
	hexAddr := func(s string) string {
		a := netip.MustParseAddr(s).As4()
		v := binary.NativeEndian.Uint32(a[:])
		return string(binaryHex(v))
	}
	header := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	line := func(iface, dest, gw, flags, mask string) string {
		return iface + "\t" + dest + "\t" + gw + "\t" + flags + "\t0\t0\t0\t" + mask + "\t0\t0\t0\n"
	}
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"one default route", header +
			line("eth0", "00000000", hexAddr("192.168.77.1"), "0003", "00000000") +
			line("eth0", hexAddr("192.168.77.0"), "00000000", "0001", hexAddr("255.255.255.0")),
			[]string{"192.168.77.1"}},
		{"two uplinks, duplicates once", header +
			line("eth0", "00000000", hexAddr("192.168.1.1"), "0003", "00000000") +
			line("wlan0", "00000000", hexAddr("10.0.0.1"), "0003", "00000000") +
			line("eth1", "00000000", hexAddr("192.168.1.1"), "0003", "00000000"),
			[]string{"192.168.1.1", "10.0.0.1"}},
		{"route down or without gateway is ignored", header +
			line("eth0", "00000000", hexAddr("192.168.1.1"), "0002", "00000000") +
			line("tun0", "00000000", "00000000", "0001", "00000000"),
			nil},
		{"not a default route", header +
			line("eth0", hexAddr("10.8.0.0"), hexAddr("192.168.1.1"), "0003", hexAddr("255.255.0.0")),
			nil},
		{"garbage lines", header + "eth0 zz\n" + line("eth0", "00000000", "XYZ", "0003", "00000000"), nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcNetRoute(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var gs []string
			for _, a := range got {
				gs = append(gs, a.String())
			}
			if !slices.Equal(gs, tt.want) {
				t.Errorf("got %v, want %v", gs, tt.want)
			}
		})
	}
}

func binaryHex(v uint32) []byte {
	const digits = "0123456789ABCDEF"
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return b
}

// ssdpAnswer builds an SSDP response the way goupnp hands it over.
func ssdpAnswer(t *testing.T, location string) *http.Response {
	t.Helper()
	raw := "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:x::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\nSERVER: Linux UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: " + location + "\r\n\r\n"
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestDiscoverBelievesOnlyTheDefaultGateway(t *testing.T) {
	router := newFakeIGD(t)
	router.description = miniupnpdDescription
	impostor := newFakeIGD(t)
	impostor.description = miniupnpdDescription

	// Both fakes listen on 127.0.0.1; the routing table decides which one
	// is the gateway, so the impostor answers from another loopback address.
	impostorURL := strings.Replace(impostor.URL(), "127.0.0.1", "127.0.0.2", 1)
	tests := []struct {
		name       string
		gateways   []netip.Addr
		routeErr   error
		answers    []string
		wantURLs   []string
		wantErr    error
		errMention string
		wantHint   DiscoveryHint
	}{
		{
			name:     "gateway answers, impostor ignored",
			gateways: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			answers:  []string{impostorURL, router.URL(), router.URL()},
			wantURLs: []string{router.URL()},
		},
		{
			name:       "only an impostor answers",
			gateways:   []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			answers:    []string{impostorURL},
			wantErr:    ErrNoGateway,
			errMention: "127.0.0.2",
			wantHint:   HintNotTheGateway,
		},
		{
			name:       "nobody answers",
			gateways:   []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			wantErr:    ErrNoGateway,
			errMention: "is UPnP enabled on the router?",
			wantHint:   HintNoAnswer,
		},
		{
			name:       "routing table unreadable",
			routeErr:   errors.New("watcher: unable to read the routing table: EIO"),
			wantErr:    ErrNoGateway,
			errMention: "routing table",
			wantHint:   HintNoDefaultGateway,
		},
		{
			name:       "no default route",
			wantErr:    ErrNoGateway,
			errMention: "no IPv4 default gateway",
			wantHint:   HintNoDefaultGateway,
		},
		{
			name:     "location by host name is not believed",
			gateways: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			answers:  []string{strings.Replace(router.URL(), "127.0.0.1", "localhost", 1)},
			wantErr:  ErrNoGateway,
			wantHint: HintNotTheGateway,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testClient(t, Config{})
			c.defaultGateways = func() ([]netip.Addr, error) { return tt.gateways, tt.routeErr }
			c.search = func(ctx context.Context, st string) ([]*http.Response, error) {
				var rs []*http.Response
				for _, a := range tt.answers {
					rs = append(rs, ssdpAnswer(t, a))
				}
				return rs, nil
			}
			gws, err := c.Gateways(context.Background())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errMention) {
					t.Fatalf("error = %v, want %v mentioning %q", err, tt.wantErr, tt.errMention)
				}
				var de *DiscoveryError
				if !errors.As(err, &de) || de.Hint != tt.wantHint {
					t.Errorf("error = %#v, want a DiscoveryError with hint %d", err, tt.wantHint)
				}
				// The watcher does not know what its callers call
				// their settings.
				if strings.Contains(err.Error(), "DOORMAN_") {
					t.Errorf("error %q names a setting of doorman's", err)
				}
				if impostor.count("GetGenericPortMappingEntry") != 0 {
					t.Error("the impostor was asked")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, g := range gws {
				got = append(got, g.URL)
			}
			if !slices.Equal(got, tt.wantURLs) {
				t.Errorf("gateways %v, want %v", got, tt.wantURLs)
			}
		})
	}
}

func TestGatewaysFromConfiguredURLs(t *testing.T) {
	good := newFakeIGD(t)
	good.description = miniupnpdDescription
	broken := newFakeIGD(t) // serves no description: 404

	c := testClient(t, Config{IGDURLs: []string{good.URL(), " ", broken.URL()}})
	c.search = func(context.Context, string) ([]*http.Response, error) {
		t.Error("discovery ran although URLs are configured")
		return nil, nil
	}
	gws, err := c.Gateways(context.Background())
	if len(gws) != 1 || gws[0].URL != good.URL() {
		t.Fatalf("gateways = %v, want the one that answers", gws)
	}
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("error = %v, want one naming the 404 of the other", err)
	}

	c = testClient(t, Config{IGDURLs: []string{broken.URL()}})
	if _, err := c.Gateways(context.Background()); !errors.Is(err, ErrNoGateway) || !strings.Contains(err.Error(), broken.URL()) {
		t.Errorf("error = %v, want ErrNoGateway naming the URL", err)
	}
}
