package watcher

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestProbeEvents(t *testing.T) {
	f := newFakeIGD(t)
	f.description = miniupnpdDescription
	c := testClient(t, Config{})
	gw := gatewayOf(t, c, f.URL())

	p, err := c.ProbeEvents(context.Background(), gw, gw.Services[0], "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Delivered || p.Granted != probeSubscriptionTimeout || p.PortInUse {
		t.Errorf("probe = %+v, want the initial event delivered and %s granted", p, probeSubscriptionTimeout)
	}
	if got := f.genaLog(); len(got) != 2 || got[0] != "SUBSCRIBE" || got[1] != "UNSUBSCRIBE" {
		t.Errorf("router saw %v, want SUBSCRIBE then UNSUBSCRIBE", got)
	}
	if subs := f.subscriptions(); len(subs) != 0 {
		t.Errorf("%d subscriptions left on the router", len(subs))
	}
}

func TestProbeEventsRefused(t *testing.T) {
	f := newFakeIGD(t)
	f.description = miniupnpdDescription
	f.gena.subscribeStatus = http.StatusInternalServerError
	c := testClient(t, Config{})
	gw := gatewayOf(t, c, f.URL())

	_, err := c.ProbeEvents(context.Background(), gw, gw.Services[0], "", time.Second)
	var ge *GENAError
	if !errors.As(err, &ge) || ge.Status != http.StatusInternalServerError {
		t.Errorf("err = %v, want a GENAError with 500", err)
	}
}

func TestProbeEventsNoEventURL(t *testing.T) {
	f := newFakeIGD(t)
	f.description = miniupnpdDescription
	c := testClient(t, Config{})
	gw := gatewayOf(t, c, f.URL())
	svc := *gw.Services[0]
	svc.EventSubURL = ""
	if _, err := c.ProbeEvents(context.Background(), gw, &svc, "", time.Second); !errors.Is(err, ErrNoEventURL) {
		t.Errorf("err = %v, want ErrNoEventURL", err)
	}
}

func TestRequestErrors(t *testing.T) {
	f := newFakeIGD(t)
	f.description = miniupnpdDescription
	f.setTable(row("TCP", 8080, "192.168.1.20", 80, "cam"))
	c := testClient(t, Config{})
	gw := gatewayOf(t, c, f.URL())

	// A listing ends with 713 and a delete is confirmed with 714: neither
	// is an error.
	if _, err := c.ListMappings(context.Background(), gw); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteMapping(context.Background(), gw, Key{Service: ipConn2, Protocol: "TCP", ExternalPort: 8080}); err != nil {
		t.Fatal(err)
	}
	if got := c.RequestErrors(); len(got) != 0 {
		t.Errorf("RequestErrors = %v after a clean listing and delete", got)
	}

	f.mu.Lock()
	f.deleteFault = CodeNotAuthorized
	f.mu.Unlock()
	f.addRow(row("UDP", 9000, "192.168.1.21", 9000, "game"))
	_ = c.DeleteMapping(context.Background(), gw, Key{Service: ipConn2, Protocol: "UDP", ExternalPort: 9000})
	f.srv.Close()
	_, _ = c.ListMappings(context.Background(), gw)

	got := c.RequestErrors()
	if got[RequestErrorKey{"DeletePortMapping", CodeNotAuthorized}] != 1 {
		t.Errorf("RequestErrors = %v, want one DeletePortMapping 606", got)
	}
	if got[RequestErrorKey{"GetGenericPortMappingEntry", 0}] == 0 {
		t.Errorf("RequestErrors = %v, want the listing of a router that is gone counted with code 0", got)
	}
	// The copy is the caller's.
	got[RequestErrorKey{"x", 1}] = 1
	if _, ok := c.RequestErrors()[RequestErrorKey{"x", 1}]; ok {
		t.Error("RequestErrors returns the client's own map")
	}
}

// A running doorman holds the fixed callback port: the probe uses another.
func TestProbeEventsPortInUse(t *testing.T) {
	f := newFakeIGD(t)
	f.description = miniupnpdDescription
	c := testClient(t, Config{})
	gw := gatewayOf(t, c, f.URL())
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, port, _ := net.SplitHostPort(held.Addr().String())

	p, err := c.ProbeEvents(context.Background(), gw, gw.Services[0], ":"+port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !p.PortInUse || !p.Delivered || strings.Contains(p.Callback, ":"+port+"/") {
		t.Errorf("probe = %+v, want another port than the held %s, and the event delivered", p, port)
	}
}

func TestProbeHandler(t *testing.T) {
	router := netip.MustParseAddr("192.168.1.1")
	tests := []struct {
		name, method, path, from string
		want                     int
	}{
		{"the router's NOTIFY", "NOTIFY", "/probe/x", "192.168.1.1:5000", http.StatusOK},
		{"an IPv4-mapped source", "NOTIFY", "/probe/x", "[::ffff:192.168.1.1]:5000", http.StatusOK},
		{"another host", "NOTIFY", "/probe/x", "192.168.1.66:5000", http.StatusPreconditionFailed},
		{"another path", "NOTIFY", "/probe/y", "192.168.1.1:5000", http.StatusPreconditionFailed},
		{"not a NOTIFY", "GET", "/probe/x", "192.168.1.1:5000", http.StatusPreconditionFailed},
		{"an unreadable source", "NOTIFY", "/probe/x", "router", http.StatusPreconditionFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, delivered := probeHandler("/probe/x", router)
			r := httptest.NewRequest(tt.method, tt.path, nil)
			r.RemoteAddr = tt.from
			rw := httptest.NewRecorder()
			h.ServeHTTP(rw, r)
			if rw.Code != tt.want {
				t.Errorf("status %d, want %d", rw.Code, tt.want)
			}
			select {
			case <-delivered:
				if tt.want != http.StatusOK {
					t.Error("counted as delivered")
				}
			default:
				if tt.want == http.StatusOK {
					t.Error("not counted as delivered")
				}
			}
			// A second NOTIFY does not close the channel again.
			h.ServeHTTP(httptest.NewRecorder(), r)
		})
	}
}
