package watcher

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestListMappingsEndOfList(t *testing.T) {
	rows := []PortMappingEntry{
		row("TCP", 18080, "192.168.77.21", 8080, "libminiupnpc"),
		row("UDP", 8000, "192.168.77.22", 8001, "NAT-PMP 8000 udp"),
	}
	for _, code := range []int{713, 714, 402, 501} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			igd := newFakeIGD(t)
			igd.description = miniupnpdDescription
			igd.entry = tableEntries(rows, code)
			c := testClient(t, Config{})
			gw := gatewayOf(t, c, igd.URL())
			ms, err := c.ListMappings(context.Background(), gw)
			if err != nil {
				t.Fatalf("ListMappings: %v", err)
			}
			if len(ms) != 2 {
				t.Fatalf("got %d mappings, want 2: %+v", len(ms), ms)
			}
			// Two entries and the end, plus what was in flight past it.
			if got := igd.count("GetGenericPortMappingEntry"); got < 3 || got > 2+listWindow {
				t.Errorf("%d requests, want 3 to %d", got, 2+listWindow)
			}
			want := Mapping{
				Router: gw.ID, Service: ipConn2, Protocol: "UDP", ExternalPort: 8000,
				InternalClient: "192.168.77.22", InternalPort: 8001, Enabled: true,
				Description: "NAT-PMP 8000 udp", Origin: OriginNATPMP,
			}
			if ms[1] != want {
				t.Errorf("second mapping\n got %+v\nwant %+v", ms[1], want)
			}
		})
	}
}

func TestListMappingsRouterQuirks(t *testing.T) {
	tcp := func(port int) PortMappingEntry { return row("TCP", port, "192.168.1.2", port, "app") }
	tests := []struct {
		name     string
		entry    func(i int) (string, bool)
		max      int
		want     int   // mappings returned
		maxCalls int   // requests at most
		wantErr  error // errors.Is target, nil for none
		wantCode int   // UPnP code in the error
	}{
		{
			name: "placeholder rows are dropped",
			entry: tableEntries([]PortMappingEntry{
				tcp(1000),
				row("TCP", 0, "192.168.1.2", 0, ""),
				row("UDP", 2000, "", 2000, ""),
				tcp(3000),
			}, 713),
			want: 2, maxCalls: 5,
		},
		{
			name: "router repeats entry 0 for every index",
			entry: func(int) (string, bool) {
				return entryBody(ipConn2, tcp(1000)), false
			},
			want: 1, maxCalls: 1 + maxRepeatsInARow,
		},
		{
			name: "router cycles through its entries",
			entry: func(i int) (string, bool) {
				return entryBody(ipConn2, tcp(1000+i%3)), false
			},
			want: 3, maxCalls: 3 + maxRepeatsInARow,
		},
		{
			name:  "one entry seen twice while a device adds a mapping",
			entry: tableEntries([]PortMappingEntry{tcp(1000), tcp(1001), tcp(1001), tcp(1002)}, 713),
			want:  3, maxCalls: 5,
		},
		{
			name: "never-ending list stops at the cap",
			entry: func(i int) (string, bool) {
				return entryBody(ipConn2, tcp(1000+i)), false
			},
			max: 50, want: 50, maxCalls: 50, wantErr: ErrTooManyMappings,
		},
		{
			name: "whitespace, case and empty lease are tolerated",
			entry: tableEntries([]PortMappingEntry{{
				ExternalPort: " 443\n", Protocol: "tcp", InternalPort: "\t443 ", InternalClient: " 10.0.0.5 ",
				Enabled: "True", Description: "  web  ", LeaseDuration: "",
			}}, 713),
			want: 1, maxCalls: 2,
		},
		{
			name:  "a malformed entry is skipped",
			entry: tableEntries([]PortMappingEntry{tcp(1000), {ExternalPort: "99999", Protocol: "TCP", InternalPort: "1", InternalClient: "x"}, tcp(1002)}, 713),
			want:  2, maxCalls: 4,
		},
		{
			name: "malformed entries in a row end the list with an error",
			entry: func(i int) (string, bool) {
				if i == 0 {
					return entryBody(ipConn2, tcp(1000)), false
				}
				return entryBody(ipConn2, PortMappingEntry{ExternalPort: "lots", Protocol: "TCP", InternalPort: "1", InternalClient: "x"}), false
			},
			want: 1, maxCalls: 1 + maxMalformedInARow,
			wantErr: ErrMalformedEntry,
		},
		{
			name:  "another fault is an error with its code",
			entry: func(int) (string, bool) { return faultBody(606, "Action not authorized"), true },
			want:  0, maxCalls: 1, wantErr: errAny, wantCode: 606,
		},
		{
			name: "malformed XML is an error",
			entry: func(int) (string, bool) {
				return `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:Get`, false
			},
			want: 0, maxCalls: 1, wantErr: errAny,
		},
		{
			name:  "a body that is not SOAP is an error",
			entry: func(int) (string, bool) { return "<html>login required</html>", false },
			want:  0, maxCalls: 1, wantErr: errAny,
		},
		{
			name: "a huge response is cut off",
			entry: func(int) (string, bool) {
				e := tcp(1000)
				e.Description = strings.Repeat("A", 2*maxSOAPBytes)
				return entryBody(ipConn2, e), false
			},
			want: 0, maxCalls: 1, wantErr: ErrResponseTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			igd := newFakeIGD(t)
			igd.description = miniupnpdDescription
			igd.entry = tt.entry
			c := testClient(t, Config{MaxMappings: tt.max})
			ms, err := c.ListMappings(context.Background(), gatewayOf(t, c, igd.URL()))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("ListMappings: %v", err)
			case tt.wantErr == errAny && err == nil, tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("ListMappings error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantCode != 0 && UPnPErrorCode(err) != tt.wantCode {
				t.Errorf("UPnP code = %d (%v), want %d", UPnPErrorCode(err), err, tt.wantCode)
			}
			if len(ms) != tt.want {
				t.Errorf("got %d mappings, want %d", len(ms), tt.want)
			}
			// Up to listWindow-1 requests are in flight past the end, and a
			// failed request is tried once more on its own.
			if got, most := igd.count("GetGenericPortMappingEntry"), tt.maxCalls+listWindow; got > most {
				t.Errorf("%d requests, want at most %d", got, most)
			}
		})
	}
}

// errAny stands for "some error" in test tables.
var errAny = errors.New("any error")

func TestListMappingsParsesFields(t *testing.T) {
	igd := newFakeIGD(t)
	igd.description = miniupnpdDescription
	igd.entry = tableEntries([]PortMappingEntry{{
		RemoteHost: "198.51.100.7", ExternalPort: "443", Protocol: "TCP", InternalPort: "8443",
		InternalClient: "192.168.1.20", Enabled: "0", Description: "a &lt;b&gt; &amp; c", LeaseDuration: "3600",
	}}, 713)
	c := testClient(t, Config{})
	gw := gatewayOf(t, c, igd.URL())
	ms, err := c.ListMappings(context.Background(), gw)
	if err != nil || len(ms) != 1 {
		t.Fatalf("ListMappings = %v, %v", ms, err)
	}
	want := Mapping{
		Router: gw.ID, Service: ipConn2, Protocol: "TCP", ExternalPort: 443, RemoteHost: "198.51.100.7",
		InternalClient: "192.168.1.20", InternalPort: 8443, Enabled: false, Description: "a <b> & c",
		LeaseDuration: time.Hour, Origin: OriginUPnP,
	}
	if ms[0] != want {
		t.Errorf("\n got %+v\nwant %+v", ms[0], want)
	}
}

func TestListMappingsRouterHangs(t *testing.T) {
	release := make(chan struct{})
	igd := newFakeIGD(t)
	igd.description = miniupnpdDescription
	igd.handle = func(w http.ResponseWriter, r *http.Request, action string, index int) bool {
		if index == 1 {
			// Headers sent, then nothing: a router stuck mid-response.
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">`))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return true
		}
		return false
	}
	igd.entry = tableEntries([]PortMappingEntry{row("TCP", 1000, "10.0.0.2", 1000, ""), row("TCP", 1001, "10.0.0.2", 1001, "")}, 713)
	defer close(release)

	c := testClient(t, Config{RequestTimeout: 300 * time.Millisecond})
	gw := gatewayOf(t, c, igd.URL())
	start := time.Now()
	ms, err := c.ListMappings(context.Background(), gw)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %s; the request timeout is 300ms", took)
	}
	if len(ms) != 1 {
		t.Errorf("got %d mappings, want the 1 read before the hang", len(ms))
	}
}

func TestListMappingsHTTPErrorWithoutBody(t *testing.T) {
	igd := newFakeIGD(t)
	igd.description = miniupnpdDescription
	igd.handle = func(w http.ResponseWriter, r *http.Request, action string, index int) bool {
		w.WriteHeader(http.StatusInternalServerError)
		return true
	}
	c := testClient(t, Config{})
	_, err := c.ListMappings(context.Background(), gatewayOf(t, c, igd.URL()))
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("error = %v, want one naming HTTP 500", err)
	}
}

func TestListMappingsSendsDeclaredServiceType(t *testing.T) {
	// The Huawei HG531 declares urn:dslforum-org types; the SOAPAction must
	// name the type the router declared, not the standard one.
	igd := newFakeIGD(t)
	igd.description = readCapture(t, "huawei-hg531v1-rootdesc.xml")
	igd.entry = func(int) (string, bool) { return faultBody(713, "SpecifiedArrayIndexInvalid"), true }
	c := testClient(t, Config{})
	gw := gatewayOf(t, c, igd.URL())
	if _, err := c.ListMappings(context.Background(), gw); err != nil {
		t.Fatal(err)
	}
	want := `"urn:dslforum-org:service:WANPPPConnection:1#GetGenericPortMappingEntry"`
	for _, got := range igd.actions() {
		if got != want {
			t.Errorf("SOAPAction = %s, want %s", got, want)
		}
	}
}

func TestListMappingsFallsBackToOneRequestAtATime(t *testing.T) {
	var rows []PortMappingEntry
	for p := 1000; p < 1020; p++ {
		rows = append(rows, row("UDP", p, "10.0.0.2", p, "app"))
	}
	var (
		mu       sync.Mutex
		inFlight int
		dropped  int
	)
	igd := newFakeIGD(t)
	igd.description = miniupnpdDescription
	igd.entry = tableEntries(rows, 713)
	igd.handle = func(w http.ResponseWriter, r *http.Request, action string, index int) bool {
		mu.Lock()
		inFlight++
		busy := inFlight > 1
		if busy {
			dropped++
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		// Give overlapping requests a chance to overlap.
		time.Sleep(2 * time.Millisecond)
		if busy {
			// A router that cannot take a second connection drops it.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return true
		}
		return false
	}
	c := testClient(t, Config{})
	ms, err := c.ListMappings(context.Background(), gatewayOf(t, c, igd.URL()))
	if err != nil {
		t.Fatalf("ListMappings: %v", err)
	}
	if len(ms) != len(rows) {
		t.Errorf("got %d mappings, want %d", len(ms), len(rows))
	}
	mu.Lock()
	defer mu.Unlock()
	if dropped == 0 {
		t.Error("no request overlapped: the test proves nothing")
	}
}
