package identify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/internal/testlog"
)

// fakeResolver answers reverse lookups from a function and counts them.
type fakeResolver struct {
	answer func(ctx context.Context, addr string) ([]string, error)
	mu     sync.Mutex
	calls  map[string]int
}

func (r *fakeResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	r.mu.Lock()
	if r.calls == nil {
		r.calls = make(map[string]int)
	}
	r.calls[addr]++
	r.mu.Unlock()
	return r.answer(ctx, addr)
}

func (r *fakeResolver) count(addr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[addr]
}

func notFound(addr string) error {
	return &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
}

// names answers from a table and says "no such host" for the rest.
func names(table map[string][]string) *fakeResolver {
	return &fakeResolver{answer: func(_ context.Context, addr string) ([]string, error) {
		if n, ok := table[addr]; ok {
			return n, nil
		}
		return nil, notFound(addr)
	}}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func noProbe(context.Context, netip.Addr) bool { return false }

// newTest returns an Identifier reading the test files, sending nothing and
// logging to the test.
func newTest(t *testing.T, cfg Config) *Identifier {
	t.Helper()
	if cfg.Resolver == nil {
		cfg.Resolver = names(nil)
	}
	if cfg.NeighbourFile == "" {
		cfg.NeighbourFile = filepath.Join("testdata", "arp-home.txt")
	}
	if cfg.OUIFiles == nil {
		cfg.OUIFiles = []string{filepath.Join("testdata", "oui-sample.txt")}
	}
	if cfg.Probe == nil {
		cfg.Probe = noProbe
	}
	if cfg.Logger == nil {
		cfg.Logger = testlog.New(t, slog.LevelDebug)
	}
	id := New(cfg)
	id.interfaces = func() ([]net.Interface, error) { return nil, nil }
	return id
}

func TestDevice(t *testing.T) {
	id := newTest(t, Config{Resolver: names(map[string][]string{
		"192.168.178.20": {"macbook.fritz.box."},
		"192.168.178.1":  {"fritz.box."},
	})})
	tests := []struct {
		ip   string
		want Device
	}{
		{"192.168.178.20", Device{IP: "192.168.178.20", Name: "macbook.fritz.box", MAC: "00:03:93:aa:bb:cc", Vendor: "Apple"}},
		{"192.168.178.1", Device{IP: "192.168.178.1", Name: "fritz.box", MAC: "00:04:0e:12:34:56", Vendor: "AVM"}},
		{" ::ffff:192.168.178.20 ", Device{IP: "192.168.178.20", Name: "macbook.fritz.box", MAC: "00:03:93:aa:bb:cc", Vendor: "Apple"}},
		// Phones' private addresses: the OUI means nothing.
		{"192.168.178.34", Device{IP: "192.168.178.34", MAC: "3e:12:34:56:78:9a", Randomized: true}},
		{"192.168.178.80", Device{IP: "192.168.178.80", MAC: "12:34:56:78:9a:bc", Randomized: true}},
		{"192.168.178.50", Device{IP: "192.168.178.50", MAC: "8c:f5:a3:01:02:04", Vendor: "Samsung Electronics"}},
		{"192.168.178.71", Device{IP: "192.168.178.71", MAC: "f0:9f:c2:00:00:03", Vendor: "Ubiquiti Networks"}},
		{"192.168.178.100", Device{IP: "192.168.178.100", MAC: "b8:27:eb:00:00:01", Vendor: "Raspberry Pi Foundation"}},
		{"192.168.178.101", Device{IP: "192.168.178.101", MAC: "00:50:c2:00:00:01", Vendor: "Jörgen Elektronik"}},
		// A MAC whose prefix the registry does not list.
		{"192.168.178.81", Device{IP: "192.168.178.81", MAC: "00:11:22:33:44:55"}},
		// Incomplete, zero, group and conflicting entries give no MAC.
		{"192.168.178.41", Device{IP: "192.168.178.41"}},
		{"192.168.178.42", Device{IP: "192.168.178.42"}},
		{"192.168.178.43", Device{IP: "192.168.178.43"}},
		{"192.168.178.60", Device{IP: "192.168.178.60"}},
		{"192.168.178.61", Device{IP: "192.168.178.61"}},
		{"192.168.178.70", Device{IP: "192.168.178.70"}},
		{"192.168.178.93", Device{IP: "192.168.178.93"}},
		{"10.0.0.1", Device{IP: "10.0.0.1"}},
		{"2001:db8::1", Device{IP: "2001:db8::1"}},
		{"not-an-ip", Device{IP: "not-an-ip"}},
		{"", Device{}},
		{"fe80::1%eth0", Device{IP: "fe80::1%eth0"}},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			if got := id.Device(t.Context(), tt.ip); got != tt.want {
				t.Errorf("Device(%q) =\n %+v\nwant\n %+v", tt.ip, got, tt.want)
			}
		})
	}
}

// Without the system registry the embedded table names the vendor; a file
// that is there but is not a registry does not hide it.
func TestDeviceEmbeddedVendors(t *testing.T) {
	for _, files := range [][]string{
		{filepath.Join("testdata", "no-such-file.txt")},
		{filepath.Join("testdata", "arp-home.txt"), filepath.Join("testdata", "no-such-file.txt")},
		{},
	} {
		// Decoding the embedded table takes over the default second
		// under -race on a busy machine; the lookups answer at once, so
		// a long timeout only waits for the table.
		id := newTest(t, Config{OUIFiles: files, LookupTimeout: 30 * time.Second})
		if got := id.Device(t.Context(), "192.168.178.20"); got.Vendor != "Apple" {
			t.Errorf("OUIFiles %q: vendor %q, want Apple from the embedded table", files, got.Vendor)
		}
		if got := id.Device(t.Context(), "192.168.178.100"); got.Vendor != "Raspberry Pi Foundation" {
			t.Errorf("OUIFiles %q: vendor %q, want Raspberry Pi Foundation", files, got.Vendor)
		}
	}
}

func TestParseNeighbours(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "arp-home.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table, err := parseNeighbours(f)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"192.168.178.1":   "00:04:0e:12:34:56",
		"192.168.178.20":  "00:03:93:aa:bb:cc",
		"192.168.178.34":  "3e:12:34:56:78:9a",
		"192.168.178.50":  "8c:f5:a3:01:02:04", // permanent (0x6) counts
		"192.168.178.71":  "f0:9f:c2:00:00:03", // same MAC on two interfaces
		"192.168.178.80":  "12:34:56:78:9a:bc",
		"192.168.178.81":  "00:11:22:33:44:55",
		"192.168.178.100": "b8:27:eb:00:00:01",
		"192.168.178.101": "00:50:c2:00:00:01",
	}
	got := make(map[string]string)
	for ip, mac := range table {
		got[ip.String()] = formatMAC(mac)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parsed\n %v\nwant\n %v", got, want)
	}
}

func TestParseMAC(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"00:03:93:aa:bb:cc", "00:03:93:aa:bb:cc"},
		{"00:03:93:AA:BB:CC", "00:03:93:aa:bb:cc"},
		{"00-03-93-aa-bb-cc", "00:03:93:aa:bb:cc"},
		{"00:03:93:aa:bb", ""},
		{"00:03:93:aa:bb:cc:dd", ""},
		{"0003.93aa.bbcc", ""},
		{"00:03:93:aa:bb:cg", ""},
		{"00:03:93:aa:bb+cc", ""},
		{"+0:03:93:aa:bb:cc", ""},
	}
	for _, tt := range tests {
		mac, ok := parseMAC(tt.in)
		got := ""
		if ok {
			got = formatMAC(mac)
		}
		if got != tt.want {
			t.Errorf("parseMAC(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The neighbour table is read again at most every couple of seconds.
func TestNeighbourTableCached(t *testing.T) {
	file := filepath.Join(t.TempDir(), "arp")
	write := func(lines ...string) {
		t.Helper()
		body := "IP address       HW type     Flags       HW address            Mask     Device\n" + strings.Join(lines, "\n") + "\n"
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write()
	clock := newClock()
	id := newTest(t, Config{NeighbourFile: file, Now: clock.Now})
	if d := id.Device(t.Context(), "192.168.1.5"); d.MAC != "" {
		t.Fatalf("MAC %q from an empty table", d.MAC)
	}
	write("192.168.1.5      0x1         0x2         00:03:93:00:00:05     *        eth0")
	if d := id.Device(t.Context(), "192.168.1.5"); d.MAC != "" {
		t.Errorf("table read again after no time: MAC %q", d.MAC)
	}
	clock.Advance(neighbourMaxAge)
	if d := id.Device(t.Context(), "192.168.1.5"); d.MAC != "00:03:93:00:00:05" || d.Vendor != "Apple" {
		t.Errorf("after %v: %+v, want the new entry", neighbourMaxAge, d)
	}
	// A missing table is not an error, just no MACs.
	os.Remove(file)
	clock.Advance(neighbourMaxAge)
	if d := id.Device(t.Context(), "192.168.1.5"); d.MAC != "" {
		t.Errorf("table gone: MAC %q", d.MAC)
	}
}

// When the kernel does not know the device, a probe makes it ask; Device
// waits for the answer, and does not probe the same address again soon.
func TestProbe(t *testing.T) {
	file := filepath.Join(t.TempDir(), "arp")
	header := "IP address       HW type     Flags       HW address            Mask     Device\n"
	if err := os.WriteFile(file, []byte(header), 0o644); err != nil {
		t.Fatal(err)
	}
	var probes atomic.Int32
	probe := func(_ context.Context, ip netip.Addr) bool {
		probes.Add(1)
		if ip.String() != "192.168.1.7" {
			return true // sent, but the device never answers
		}
		go func() {
			time.Sleep(3 * probePoll)
			os.WriteFile(file, []byte(header+"192.168.1.7      0x1         0x2         00:04:0e:00:00:07     *        eth0\n"), 0o644)
		}()
		return true
	}
	clock := newClock()
	id := newTest(t, Config{NeighbourFile: file, Probe: probe, Now: clock.Now})

	if d := id.Device(t.Context(), "192.168.1.7"); d.MAC != "00:04:0e:00:00:07" || d.Vendor != "AVM" {
		t.Errorf("after a probe: %+v, want the MAC the kernel learned", d)
	}

	start := time.Now()
	if d := id.Device(t.Context(), "192.168.1.8"); d.MAC != "" {
		t.Errorf("silent device: MAC %q", d.MAC)
	}
	if took := time.Since(start); took < probeWait || took > probeWait+time.Second {
		t.Errorf("silent device: waited %v, want about %v", took, probeWait)
	}
	start = time.Now()
	id.Device(t.Context(), "192.168.1.8")
	if took := time.Since(start); took > probeWait/2 {
		t.Errorf("second call for a silent device waited %v", took)
	}
	if n := probes.Load(); n != 2 {
		t.Errorf("%d probes, want 2 (one per address)", n)
	}
	clock.Advance(probeInterval)
	id.Device(t.Context(), "192.168.1.8")
	if n := probes.Load(); n != 3 {
		t.Errorf("%d probes after %v, want 3", n, probeInterval)
	}
}

// Only private IPv4 addresses on a local network are probed; nothing goes
// to the internet, to IPv6 or to group addresses.
func TestProbeUDPSendsOnlyOnLink(t *testing.T) {
	for _, ip := range []string{"8.8.8.8", "192.0.2.77", "2001:db8::1", "fe80::1", "127.0.0.1", "224.0.0.251", "255.255.255.255"} {
		if probeUDP(t.Context(), netip.MustParseAddr(ip)) {
			t.Errorf("probeUDP(%s) sent a probe", ip)
		}
	}
	// A private address no local network holds goes to the router: no.
	for _, ip := range []string{"10.255.255.254", "172.31.255.254", "192.168.254.254"} {
		a := netip.MustParseAddr(ip)
		if !onLink(a) && probeUDP(t.Context(), a) {
			t.Errorf("probeUDP(%s) sent a probe off the local networks", ip)
		}
	}
}

// A share that points at doorman's own machine gets the machine's MAC.
func TestOwnAddressMAC(t *testing.T) {
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Skip(err)
	}
	for _, ifc := range ifaces {
		if len(ifc.HardwareAddr) != 6 || ifc.HardwareAddr[0]&1 != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			p, ok := prefixOf(a)
			if !ok || !p.Addr().Is4() {
				continue
			}
			id := newTest(t, Config{NeighbourFile: filepath.Join("testdata", "arp-empty.txt")})
			id.interfaces = net.Interfaces
			d := id.Device(t.Context(), p.Addr().String())
			if d.MAC != ifc.HardwareAddr.String() {
				t.Errorf("own address %s on %s: MAC %q, want %q", p.Addr(), ifc.Name, d.MAC, ifc.HardwareAddr)
			}
			return
		}
	}
	t.Skip("no interface with an IPv4 address and a MAC")
}

func TestReverseDNSCached(t *testing.T) {
	clock := newClock()
	r := names(map[string][]string{"192.168.178.20": {"nas.fritz.box."}})
	id := newTest(t, Config{Resolver: r, Now: clock.Now})
	for i := range 3 {
		if d := id.Device(t.Context(), "192.168.178.20"); d.Name != "nas.fritz.box" {
			t.Fatalf("call %d: name %q", i, d.Name)
		}
	}
	if n := r.count("192.168.178.20"); n != 1 {
		t.Errorf("%d lookups for three calls, want 1", n)
	}
	clock.Advance(DefaultCacheTTL - time.Second)
	id.Device(t.Context(), "192.168.178.20")
	if n := r.count("192.168.178.20"); n != 1 {
		t.Errorf("%d lookups before the TTL ran out, want 1", n)
	}
	clock.Advance(time.Second)
	id.Device(t.Context(), "192.168.178.20")
	if n := r.count("192.168.178.20"); n != 2 {
		t.Errorf("%d lookups after the TTL, want 2", n)
	}
}

// "No such name" is remembered as long as a name; other failures are
// tried again sooner.
func TestReverseDNSNegativeCache(t *testing.T) {
	clock := newClock()
	r := &fakeResolver{answer: func(_ context.Context, addr string) ([]string, error) {
		if addr == "192.168.178.34" {
			return nil, &net.DNSError{Err: "server misbehaving", Name: addr, IsTemporary: true}
		}
		return nil, notFound(addr)
	}}
	id := newTest(t, Config{Resolver: r, Now: clock.Now, CacheTTL: 5 * time.Minute})
	for range 2 {
		if d := id.Device(t.Context(), "192.168.178.20"); d.Name != "" {
			t.Errorf("name %q for no such host", d.Name)
		}
		id.Device(t.Context(), "192.168.178.34")
	}
	if a, b := r.count("192.168.178.20"), r.count("192.168.178.34"); a != 1 || b != 1 {
		t.Errorf("lookups: not found %d, failed %d; want 1 and 1", a, b)
	}
	clock.Advance(failedLookupTTL)
	id.Device(t.Context(), "192.168.178.20")
	id.Device(t.Context(), "192.168.178.34")
	if a, b := r.count("192.168.178.20"), r.count("192.168.178.34"); a != 1 || b != 2 {
		t.Errorf("after %v: not found %d, failed %d; want 1 and 2", failedLookupTTL, a, b)
	}
	clock.Advance(5 * time.Minute)
	id.Device(t.Context(), "192.168.178.20")
	if a := r.count("192.168.178.20"); a != 2 {
		t.Errorf("after the TTL: %d lookups, want 2", a)
	}
}

// A resolver that does not answer in time costs one timeout, not more, and
// Device returns without a name.
func TestReverseDNSTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name   string
		answer func(ctx context.Context, addr string) ([]string, error)
	}{
		{"honours the context", func(ctx context.Context, _ string) ([]string, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}},
		{"ignores the context", func(context.Context, string) ([]string, error) {
			<-release
			return nil, errors.New("late")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeResolver{answer: tt.answer}
			id := newTest(t, Config{Resolver: r, LookupTimeout: timeout})
			for i := range 2 {
				start := time.Now()
				d := id.Device(t.Context(), "192.168.178.20")
				took := time.Since(start)
				if d.Name != "" || d.MAC != "00:03:93:aa:bb:cc" {
					t.Errorf("call %d: %+v, want no name and the MAC", i, d)
				}
				if took > timeout+300*time.Millisecond {
					t.Errorf("call %d took %v with a timeout of %v", i, took, timeout)
				}
			}
			if n := r.count("192.168.178.20"); n != 1 {
				t.Errorf("%d lookups, want 1", n)
			}
		})
	}
}

// A caller's own deadline is kept even when shorter than the timeout.
func TestDeviceHonoursContext(t *testing.T) {
	// The lookups outlive the callers by design; they end with the test,
	// not a minute later, so that no goroutine is left behind.
	testDone := make(chan struct{})
	t.Cleanup(func() { close(testDone) })
	r := &fakeResolver{answer: func(ctx context.Context, _ string) ([]string, error) {
		select {
		case <-ctx.Done():
		case <-testDone:
		}
		return nil, context.Canceled
	}}
	id := newTest(t, Config{Resolver: r, LookupTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	id.Device(ctx, "192.168.178.20")
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v with a 50ms deadline", took)
	}
	cancelled, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if d := id.Device(cancelled, "192.168.178.1"); d.Name != "" {
		t.Errorf("cancelled context: name %q", d.Name)
	}
}

// An answer that comes after the caller gave up still fills the cache.
func TestReverseDNSLateAnswerCached(t *testing.T) {
	r := &fakeResolver{answer: func(context.Context, string) ([]string, error) {
		time.Sleep(150 * time.Millisecond)
		return []string{"slow.lan."}, nil
	}}
	id := newTest(t, Config{Resolver: r, LookupTimeout: 50 * time.Millisecond})
	if d := id.Device(t.Context(), "192.168.178.20"); d.Name != "" {
		t.Errorf("name %q before the answer came", d.Name)
	}
	time.Sleep(250 * time.Millisecond)
	if d := id.Device(t.Context(), "192.168.178.20"); d.Name != "slow.lan" {
		t.Errorf("name %q, want the late answer from the cache", d.Name)
	}
	if n := r.count("192.168.178.20"); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
}

// A flood of shares from one device asks DNS once.
func TestReverseDNSConcurrent(t *testing.T) {
	r := &fakeResolver{answer: func(context.Context, string) ([]string, error) {
		time.Sleep(50 * time.Millisecond)
		return []string{"nas.lan."}, nil
	}}
	id := newTest(t, Config{Resolver: r})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if d := id.Device(t.Context(), "192.168.178.20"); d.Name != "nas.lan" || d.Vendor != "Apple" {
				t.Errorf("got %+v", d)
			}
		})
	}
	wg.Wait()
	if n := r.count("192.168.178.20"); n != 1 {
		t.Errorf("%d lookups for 50 concurrent calls, want 1", n)
	}
}

func TestDeviceHostileNames(t *testing.T) {
	r := names(map[string][]string{
		"192.168.178.1":  {"<b>fritz</b>.box.", "fritz.box."},
		"192.168.178.20": {"<script>alert(1)</script>.lan."},
		"192.168.178.34": {"192.168.178.1."},
		"192.168.178.50": {"..", ""},
	})
	id := newTest(t, Config{Resolver: r})
	for ip, want := range map[string]string{
		"192.168.178.1":  "fritz.box", // the clean answer wins
		"192.168.178.20": "scriptalert1script.lan",
		"192.168.178.34": "", // posing as the router's address
		"192.168.178.50": "",
	} {
		if d := id.Device(t.Context(), ip); d.Name != want {
			t.Errorf("%s: name %q, want %q", ip, d.Name, want)
		}
	}
}

func TestCleanHostname(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nas.fritz.box.", "nas.fritz.box"},
		{"Johns-iPhone.fritz.box", "Johns-iPhone.fritz.box"},
		{"DESKTOP_4F2A.lan", "DESKTOP_4F2A.lan"},
		{"nas", "nas"},
		{"nas..lan", "nas.lan"},
		{".nas.lan", "nas.lan"},
		{"-nas-.lan.", "nas-.lan"},
		{"nas\n<b>x</b>.lan", "nasbxb.lan"},
		{"nas\x00.lan", "nas.lan"},
		{"John's iPhone.lan", "JohnsiPhone.lan"},
		{"n\u0430s.lan", "ns.lan"}, // Cyrillic a dropped
		{"192.168.178.1", ""},
		{"192.168.178.1.", ""},
		{"::1", ""},
		{"1234", ""},
		{"...", ""},
		{"", ""},
		{strings.Repeat("a", 63) + ".example.lan", strings.Repeat("a", 63)},
		{strings.Repeat("ab.", 40), strings.TrimSuffix(strings.Repeat("ab.", 21), ".")},
		{strings.Repeat("x", 100), strings.Repeat("x", MaxNameLen)},
	}
	for _, tt := range tests {
		if got := cleanHostname(tt.in); got != tt.want {
			t.Errorf("cleanHostname(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseNeighbours(f *testing.F) {
	for _, name := range []string{"arp-home.txt", "arp-empty.txt", "oui-sample.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		table, err := parseNeighbours(strings.NewReader(string(data)))
		if err != nil {
			return // a line longer than the scanner takes
		}
		for ip, mac := range table {
			if !ip.Is4() || !unicastMAC(mac) {
				t.Fatalf("entry %v → %v", ip, formatMAC(mac))
			}
			if back, ok := parseMAC(formatMAC(mac)); !ok || back != mac {
				t.Fatalf("MAC %v does not round-trip", formatMAC(mac))
			}
		}
	})
}

func FuzzCleanHostname(f *testing.F) {
	for _, s := range []string{"nas.fritz.box.", "<script>.lan", "192.168.178.1", "a..b", strings.Repeat("x.", 50)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := cleanHostname(s)
		if got == "" {
			return
		}
		if len(got) > MaxNameLen {
			t.Fatalf("%q is %d bytes", got, len(got))
		}
		for _, c := range []byte(got) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
				t.Fatalf("%q holds %q", got, c)
			}
		}
		if strings.Contains(got, "..") || strings.HasPrefix(got, ".") || strings.HasSuffix(got, ".") {
			t.Fatalf("%q has an empty label", got)
		}
		if _, err := netip.ParseAddr(got); err == nil {
			t.Fatalf("%q reads as an address", got)
		}
		if again := cleanHostname(got); again != got {
			t.Fatalf("cleanHostname(%q) = %q: not stable", got, again)
		}
	})
}
