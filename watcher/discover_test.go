package watcher

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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

// timedAnswer is an SSDP answer a search seam hands over after a delay.
type timedAnswer struct {
	after    time.Duration
	from     string // default 127.0.0.1
	st       string // default IGD:1
	location string
}

// searchAnswering is a search seam that hands over answers as they come
// due, then waits for the end of the search as the real one does; it counts
// the answers handed over.
func searchAnswering(delivered *atomic.Int32, answers ...timedAnswer) func(context.Context, []string, func(searchAnswer)) error {
	return func(ctx context.Context, targets []string, answer func(searchAnswer)) error {
		start := time.Now()
		for _, a := range answers {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Until(start.Add(a.after))):
			}
			if ctx.Err() != nil {
				return nil
			}
			from := netip.MustParseAddr(cmp.Or(a.from, "127.0.0.1"))
			answer(searchAnswer{From: from, ST: cmp.Or(a.st, searchIGDv1), Location: a.location})
			if delivered != nil {
				delivered.Add(1)
			}
		}
		<-ctx.Done()
		return nil
	}
}

func TestDiscoverBelievesOnlyTheDefaultGateway(t *testing.T) {
	router := newFakeIGD(t)
	router.description = miniupnpdDescription
	impostor := newFakeIGD(t)
	impostor.description = miniupnpdDescription

	// Both fakes listen on 127.0.0.1; the routing table decides which one
	// is the gateway, so the impostor answers from another loopback address.
	impostorURL := strings.Replace(impostor.URL(), "127.0.0.1", "127.0.0.2", 1)
	loopback := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	tests := []struct {
		name       string
		gateways   []netip.Addr
		routeErr   error
		answers    []timedAnswer
		wantURLs   []string
		wantErr    error
		errMention string
		wantHint   DiscoveryHint
	}{
		{
			name:     "gateway answers, impostor ignored",
			gateways: loopback,
			answers:  []timedAnswer{{location: impostorURL, from: "127.0.0.2"}, {location: router.URL()}, {location: router.URL(), st: searchIGDv2}},
			wantURLs: []string{router.URL()},
		},
		{
			name:       "only an impostor answers",
			gateways:   loopback,
			answers:    []timedAnswer{{location: impostorURL, from: "127.0.0.2"}},
			wantErr:    ErrNoGateway,
			errMention: "127.0.0.2",
			wantHint:   HintNotTheGateway,
		},
		{
			name:     "another host forges the gateway's URL",
			gateways: loopback,
			answers:  []timedAnswer{{location: router.URL(), from: "127.0.0.2"}},
			wantErr:  ErrNoGateway,
			wantHint: HintNotTheGateway,
		},
		{
			name:     "an answer to another search target",
			gateways: loopback,
			answers:  []timedAnswer{{location: router.URL(), st: "upnp:rootdevice"}},
			wantErr:  ErrNoGateway,
			wantHint: HintNoAnswer,
		},
		{
			name:       "nobody answers",
			gateways:   loopback,
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
			gateways: loopback,
			answers:  []timedAnswer{{location: strings.Replace(router.URL(), "127.0.0.1", "localhost", 1)}},
			wantErr:  ErrNoGateway,
			wantHint: HintNotTheGateway,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testClient(t, Config{})
			c.discoveryTimeout = 300 * time.Millisecond
			c.defaultGateways = func() ([]netip.Addr, error) { return tt.gateways, tt.routeErr }
			c.search = searchAnswering(nil, tt.answers...)
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

// countingServer serves what handler answers and counts the requests.
func countingServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// Discovery returns once the gateway has answered and its descriptions have
// loaded, and the discovery timeout only bounds the wait for a gateway that
// does not answer.
func TestDiscoverReturnsOnceTheGatewayAnswered(t *testing.T) {
	router := newFakeIGD(t)
	router.description = miniupnpdDescription
	twin := newFakeIGD(t) // the FRITZ!Box's second description
	twin.description = miniupnpdDescription
	late, lateGets := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, rewrite(miniupnpdDescription, "http://"+r.Host, nil))
	})
	hanging, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	missing, missingGets := countingServer(t, http.NotFound)
	impostor, impostorGets := countingServer(t, http.NotFound)
	impostorURL := strings.Replace(impostor.URL, "127.0.0.1", "127.0.0.2", 1)

	flood := func(n int, answer func(i int) timedAnswer) []timedAnswer {
		var as []timedAnswer
		for i := range n {
			as = append(as, answer(i))
		}
		return as
	}
	fromImpostor := func(i int) timedAnswer {
		return timedAnswer{from: "127.0.0.2", location: fmt.Sprintf("%s/desc%d.xml", impostorURL, i)}
	}
	const timeout = time.Second
	tests := []struct {
		name           string
		answers        []timedAnswer
		requestTimeout time.Duration
		wantURLs       []string
		wantErr        bool
		errMention     string
		minTook        time.Duration
		maxTook        time.Duration
		maxDelivered   int
		check          func(t *testing.T)
	}{
		{
			name:     "the gateway's answer, then the grace",
			answers:  []timedAnswer{{location: router.URL()}},
			wantURLs: []string{router.URL()},
			minTook:  descriptionGrace, maxTook: timeout / 2,
		},
		{
			name: "a second description within the grace, a third after it",
			answers: []timedAnswer{
				{location: router.URL()},
				{after: descriptionGrace / 3, location: twin.URL(), st: searchIGDv2},
				{after: descriptionGrace + 400*time.Millisecond, location: late.URL + "/rootDesc.xml"},
			},
			wantURLs: []string{router.URL(), twin.URL()},
			maxTook:  descriptionGrace + 350*time.Millisecond,
			check: func(t *testing.T) {
				if n := lateGets.Load(); n != 0 {
					t.Errorf("a description announced after the grace was fetched %d times", n)
				}
			},
		},
		{
			name:     "a LOCATION that hangs is abandoned at the timeout once another loaded",
			answers:  []timedAnswer{{location: hanging.URL + "/rootDesc.xml"}, {after: 10 * time.Millisecond, location: router.URL()}},
			wantURLs: []string{router.URL()}, errMention: "did not load within the discovery timeout",
			minTook: timeout - 50*time.Millisecond, maxTook: timeout + 400*time.Millisecond,
		},
		{
			name:           "only a LOCATION that hangs: the request timeout ends it",
			answers:        []timedAnswer{{location: hanging.URL + "/rootDesc.xml"}},
			requestTimeout: timeout + 200*time.Millisecond,
			wantErr:        true, errMention: hanging.URL,
			minTook: timeout, maxTook: timeout + 700*time.Millisecond,
		},
		{
			name:    "a LOCATION that fails: the search goes on until the timeout",
			answers: []timedAnswer{{location: missing.URL + "/rootDesc.xml"}, {after: 50 * time.Millisecond, location: missing.URL + "/rootDesc.xml"}},
			wantErr: true, errMention: "404",
			minTook: timeout - 50*time.Millisecond, maxTook: timeout + 400*time.Millisecond,
			check: func(t *testing.T) {
				if n := missingGets.Load(); n != 1 {
					t.Errorf("the failing description was fetched %d times, want once", n)
				}
			},
		},
		{
			name: "one LOCATION spelled other ways is fetched once",
			answers: []timedAnswer{
				{location: missing.URL + "/rootDesc.xml"},
				{after: 5 * time.Millisecond, location: missing.URL + "//rootDesc.xml?x"},
				{after: 10 * time.Millisecond, location: strings.Replace(missing.URL, "127.0.0.1:", "127.0.0.1:0", 1) + "/./rootDesc.xml"},
			},
			wantErr: true, errMention: "404",
			check: func(t *testing.T) {
				if n := missingGets.Load(); n != 1 {
					t.Errorf("the description was fetched %d times, want once", n)
				}
			},
		},
		{
			name:     "a LOCATION that fails, then one that loads",
			answers:  []timedAnswer{{location: missing.URL + "/rootDesc.xml"}, {after: 100 * time.Millisecond, location: router.URL()}},
			wantURLs: []string{router.URL()}, errMention: "404",
			maxTook: timeout / 2,
		},
		{
			name:    "nobody answers: the timeout is the limit",
			wantErr: true, errMention: "no answer",
			minTook: timeout - 20*time.Millisecond, maxTook: timeout + 400*time.Millisecond,
		},
		{
			name:     "a flood from other hosts, then the gateway",
			answers:  append(flood(maxSearchAnswers-2, fromImpostor), timedAnswer{location: router.URL()}),
			wantURLs: []string{router.URL()},
			maxTook:  timeout,
			check: func(t *testing.T) {
				if n := impostorGets.Load(); n != 0 {
					t.Errorf("%d requests to the other hosts", n)
				}
			},
		},
		{
			name:    "a flood beyond the cap ends the search",
			answers: flood(5*maxSearchAnswers, fromImpostor),
			wantErr: true, errMention: "127.0.0.2",
			maxTook: timeout, maxDelivered: maxSearchAnswers + 1,
		},
		{
			name: "answers forged with the gateway's address fetch a bounded number",
			answers: flood(100, func(i int) timedAnswer {
				return timedAnswer{location: fmt.Sprintf("%s/desc%d.xml", missing.URL, i)}
			}),
			wantErr: true, errMention: "404",
			check: func(t *testing.T) {
				if n := missingGets.Load(); n > maxGatewayDescriptions {
					t.Errorf("%d descriptions fetched, want at most %d", n, maxGatewayDescriptions)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			missingGets.Store(0)
			lateGets.Store(0)
			var delivered atomic.Int32
			c := testClient(t, Config{RequestTimeout: cmp.Or(tt.requestTimeout, 2*time.Second)})
			c.discoveryTimeout = timeout
			c.defaultGateways = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil }
			c.search = searchAnswering(&delivered, tt.answers...)
			start := time.Now()
			gws, err := c.Discover(context.Background())
			took := time.Since(start)
			t.Logf("Discover took %s", took)
			if tt.wantErr != (len(gws) == 0) || (tt.wantErr && !errors.Is(err, ErrNoGateway)) {
				t.Fatalf("Discover = %v, %v; want an error: %v", gws, err, tt.wantErr)
			}
			if tt.errMention != "" && (err == nil || !strings.Contains(err.Error(), tt.errMention)) {
				t.Errorf("error = %v, want one mentioning %q", err, tt.errMention)
			}
			var got []string
			for _, g := range gws {
				got = append(got, g.URL)
			}
			if !slices.Equal(got, tt.wantURLs) {
				t.Errorf("gateways %v, want %v", got, tt.wantURLs)
			}
			if took < tt.minTook || (tt.maxTook > 0 && took > tt.maxTook) {
				t.Errorf("Discover took %s, want %s to %s", took, tt.minTook, tt.maxTook)
			}
			if tt.maxDelivered > 0 && int(delivered.Load()) > tt.maxDelivered {
				t.Errorf("%d answers read, want at most %d", delivered.Load(), tt.maxDelivered)
			}
			if tt.check != nil {
				tt.check(t)
			}
		})
	}
}

func TestDiscoveryState(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		at       int    // ms after the start
		event    string // "start", "ok", "fail", "end" (search ended) or "" (time passes)
		wantDone bool
		mayFetch bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"loaded, then the grace", []step{
			{at: 5, event: "start", mayFetch: true},
			{at: 10, event: "ok", mayFetch: true},
			{at: 10 + int(descriptionGrace/time.Millisecond) - 1, mayFetch: true},
			{at: 10 + int(descriptionGrace/time.Millisecond), wantDone: true},
		}},
		{"a second fetch in flight after the grace is waited for until the deadline", []step{
			{at: 5, event: "start", mayFetch: true},
			{at: 6, event: "start", mayFetch: true},
			{at: 10, event: "ok", mayFetch: true},
			{at: 500},
			{at: 2000, wantDone: true},
		}},
		{"a failed fetch keeps the search open", []step{
			{at: 5, event: "start", mayFetch: true},
			{at: 10, event: "fail", mayFetch: true},
			{at: 1999, mayFetch: true},
			{at: 2000, wantDone: true},
		}},
		{"past the deadline a fetch in flight with nothing loaded is waited for", []step{
			{at: 1990, event: "start", mayFetch: true},
			{at: 2500},
			{at: 6990, event: "fail", wantDone: true},
		}},
		{"the search ended and nothing is in flight", []step{
			{at: 5, event: "end", wantDone: true, mayFetch: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := discoveryState{deadline: ms(2000), searching: true}
			for _, st := range tt.steps {
				now := ms(st.at)
				switch st.event {
				case "start":
					s.fetchStarted()
				case "ok":
					s.fetchDone(now, true)
				case "fail":
					s.fetchDone(now, false)
				case "end":
					s.searching = false
				}
				if got := s.done(now); got != st.wantDone {
					t.Errorf("at %d ms after %q: done = %v, want %v", st.at, st.event, got, st.wantDone)
				}
				if got := s.mayFetch(now); got != st.mayFetch {
					t.Errorf("at %d ms after %q: mayFetch = %v, want %v", st.at, st.event, got, st.mayFetch)
				}
				if w := s.wait(now); w <= 0 {
					t.Errorf("at %d ms: wait %s", st.at, w)
				}
			}
		})
	}
	s := discoveryState{deadline: ms(2000), searching: true}
	for range maxGatewayDescriptions {
		s.fetchStarted()
	}
	if s.mayFetch(ms(1)) {
		t.Errorf("mayFetch after %d fetches", maxGatewayDescriptions)
	}
}

func TestGatewaysFromConfiguredURLs(t *testing.T) {
	good := newFakeIGD(t)
	good.description = miniupnpdDescription
	broken := newFakeIGD(t) // serves no description: 404

	c := testClient(t, Config{IGDURLs: []string{good.URL(), " ", broken.URL()}})
	c.search = func(context.Context, []string, func(searchAnswer)) error {
		t.Error("discovery ran although URLs are configured")
		return nil
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

// However many gateway URLs the LAN announces, discovery runs a bounded
// number of goroutines: the search, its resends and maxGatewayDescriptions
// fetches (each with its HTTP connection, served here in the same process).
func TestDiscoverGoroutinesAreBounded(t *testing.T) {
	hanging, gets := countingServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	var answers []timedAnswer
	for i := range 500 {
		answers = append(answers, timedAnswer{location: fmt.Sprintf("%s/desc%d.xml", hanging.URL, i)})
	}
	c := testClient(t, Config{RequestTimeout: 500 * time.Millisecond})
	c.discoveryTimeout = 300 * time.Millisecond
	c.defaultGateways = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil }
	c.search = searchAnswering(nil, answers...)
	before := runtime.NumGoroutine()
	stop, sampled := make(chan struct{}), make(chan int)
	go func() {
		peak := 0
		for {
			peak = max(peak, runtime.NumGoroutine())
			select {
			case <-stop:
				sampled <- peak
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	_, err := c.Discover(context.Background())
	close(stop)
	peak := <-sampled
	if !errors.Is(err, ErrNoGateway) {
		t.Errorf("Discover: %v", err)
	}
	t.Logf("%d goroutines before, at most %d during discovery", before, peak)
	if n := gets.Load(); n > maxGatewayDescriptions {
		t.Errorf("%d descriptions fetched, want at most %d", n, maxGatewayDescriptions)
	}
	if extra := peak - before; extra > 6*maxGatewayDescriptions {
		t.Errorf("discovery ran %d goroutines more than before", extra)
	}
}
