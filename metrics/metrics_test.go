package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

const (
	routerA = "http://192.168.1.1:5000/rootDesc.xml"
	routerB = "http://192.168.2.1:49000/igddesc.xml"
	ipConn1 = "urn:schemas-upnp-org:service:WANIPConnection:1"
	ipConn2 = "urn:schemas-upnp-org:service:WANIPConnection:2"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// fakeSources is a healthy doorman with a bit of everything.
func fakeSources() Sources {
	return Sources{
		Services: func() []watcher.ServiceStatus {
			return []watcher.ServiceStatus{
				{Router: routerA, Service: ipConn2, Events: true, LastList: t0.Add(-time.Minute)},
				{Router: routerB, Service: ipConn1, Events: false, EventsError: "refused", LastList: t0.Add(-20 * time.Second), LastError: "timeout"},
			}
		},
		State: func() (State, error) {
			return State{
				Shares: map[ShareKey]int{
					{routerA, ShareTrusted}:   3,
					{routerA, ShareBlocked}:   1,
					{routerA, SharePending}:   2,
					{routerB, ShareUndecided}: 4,
				},
				AlertsSent: 17,
				Decisions:  map[storage.AlertState]int{storage.AlertAllowed: 9, storage.AlertBlocked: 5},
				Rules:      map[storage.RuleKind]int{storage.RuleTrust: 8, storage.RuleBlock: 4},
				Queued:     2,
			}, nil
		},
		RouterErrors: func() map[watcher.RequestErrorKey]uint64 {
			return map[watcher.RequestErrorKey]uint64{
				{Action: "DeletePortMapping", Code: 606}:        3,
				{Action: "GetGenericPortMappingEntry", Code: 0}: 7,
			}
		},
		Telegram: func() Telegram { return Telegram{LastOK: t0.Add(-30 * time.Second)} },
	}
}

func healthConfig() HealthConfig {
	return HealthConfig{RouterMaxAge: 6 * time.Minute, TelegramMaxAge: 5 * time.Minute, Started: t0.Add(-time.Hour)}
}

func testConfig(src Sources) Config {
	return Config{Sources: src, Health: healthConfig(), Version: "v1.2.3", Now: func() time.Time { return t0 }}
}

func serve(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	h, err := Handler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func scrape(t *testing.T, cfg Config) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, serve(t, cfg).URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not the text format: %v\n%s", err, body)
	}
	return fams
}

// value returns the sample of family name with exactly the labels given
// ("k=v" pairs); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	fams := scrape(t, testConfig(fakeSources()))
	tests := []struct {
		name   string
		labels []string
		want   float64
		kind   dto.MetricType
	}{
		{"doorman_port_shares", []string{"router=" + routerA, "state=trusted"}, 3, dto.MetricType_GAUGE},
		{"doorman_port_shares", []string{"router=" + routerA, "state=blocked"}, 1, dto.MetricType_GAUGE},
		{"doorman_port_shares", []string{"router=" + routerA, "state=pending"}, 2, dto.MetricType_GAUGE},
		{"doorman_port_shares", []string{"router=" + routerA, "state=undecided"}, 0, dto.MetricType_GAUGE},
		{"doorman_port_shares", []string{"router=" + routerB, "state=undecided"}, 4, dto.MetricType_GAUGE},
		{"doorman_port_shares", []string{"router=" + routerB, "state=trusted"}, 0, dto.MetricType_GAUGE},
		{"doorman_alerts_sent_total", nil, 17, dto.MetricType_COUNTER},
		{"doorman_messages_queued", nil, 2, dto.MetricType_GAUGE},
		{"doorman_decisions_total", []string{"decision=allowed"}, 9, dto.MetricType_COUNTER},
		{"doorman_decisions_total", []string{"decision=blocked"}, 5, dto.MetricType_COUNTER},
		{"doorman_rules", []string{"kind=trust"}, 8, dto.MetricType_GAUGE},
		{"doorman_rules", []string{"kind=block"}, 4, dto.MetricType_GAUGE},
		{"doorman_router_request_errors_total", []string{"action=DeletePortMapping", "code=606"}, 3, dto.MetricType_COUNTER},
		{"doorman_router_request_errors_total", []string{"action=GetGenericPortMappingEntry", "code=0"}, 7, dto.MetricType_COUNTER},
		{"doorman_router_events_subscribed", []string{"router=" + routerA, "service=" + ipConn2}, 1, dto.MetricType_GAUGE},
		{"doorman_router_events_subscribed", []string{"router=" + routerB, "service=" + ipConn1}, 0, dto.MetricType_GAUGE},
		{"doorman_router_last_list_timestamp_seconds", []string{"router=" + routerA, "service=" + ipConn2}, float64(t0.Add(-time.Minute).Unix()), dto.MetricType_GAUGE},
		{"doorman_router_list_failing", []string{"router=" + routerB, "service=" + ipConn1}, 1, dto.MetricType_GAUGE},
		{"doorman_router_list_failing", []string{"router=" + routerA, "service=" + ipConn2}, 0, dto.MetricType_GAUGE},
		{"doorman_telegram_last_success_timestamp_seconds", nil, float64(t0.Add(-30 * time.Second).Unix()), dto.MetricType_GAUGE},
		{"doorman_healthy", nil, 1, dto.MetricType_GAUGE},
		{"doorman_build_info", []string{"version=v1.2.3"}, 1, dto.MetricType_GAUGE},
		{"doorman_state_read_errors", nil, 0, dto.MetricType_GAUGE},
	}
	for _, tt := range tests {
		got, ok := value(fams, tt.name, tt.labels...)
		if !ok {
			t.Errorf("%s%v missing", tt.name, tt.labels)
			continue
		}
		if got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
		if k := fams[tt.name].GetType(); k != tt.kind {
			t.Errorf("%s is a %s, want a %s", tt.name, k, tt.kind)
		}
	}
	// The Go runtime and the process are there too, on the same registry.
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
}

// The names follow Prometheus' conventions (units, _total on counters).
func TestMetricsLint(t *testing.T) {
	_, body := get(t, serve(t, testConfig(fakeSources())).URL+"/metrics")
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "doorman_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// Without Telegram there is no Telegram metric, and the database's numbers
// are left out, not zeroed, when it cannot be read.
func TestMetricsPartial(t *testing.T) {
	src := fakeSources()
	src.Telegram = nil
	src.State = func() (State, error) { return State{}, errors.New("disk on fire") }
	fams := scrape(t, testConfig(src))
	for _, name := range []string{"doorman_telegram_last_success_timestamp_seconds", "doorman_port_shares", "doorman_alerts_sent_total"} {
		if fams[name] != nil {
			t.Errorf("%s is there", name)
		}
	}
	if v, _ := value(fams, "doorman_state_read_errors"); v != 1 {
		t.Errorf("doorman_state_read_errors = %v, want 1", v)
	}
	if v, _ := value(fams, "doorman_healthy"); v != 0 {
		t.Errorf("doorman_healthy = %v with an unreadable database", v)
	}

	// A router being watched with no shares still has all four states.
	src = Sources{Services: fakeSources().Services, State: func() (State, error) { return State{}, nil }}
	fams = scrape(t, testConfig(src))
	for _, state := range shareStates {
		if v, ok := value(fams, "doorman_port_shares", "router="+routerA, "state="+state); !ok || v != 0 {
			t.Errorf("doorman_port_shares{%s} = %v, %v; want 0", state, v, ok)
		}
	}
}

func TestHealthz(t *testing.T) {
	stale := func(src Sources, d time.Duration, lastErr string) Sources {
		src.Services = func() []watcher.ServiceStatus {
			return []watcher.ServiceStatus{{Router: routerA, Service: ipConn2, LastList: t0.Add(-d), LastError: lastErr}}
		}
		return src
	}
	withTelegram := func(src Sources, tg Telegram) Sources {
		src.Telegram = func() Telegram { return tg }
		return src
	}
	withQueue := func(src Sources, n int, oldest time.Time) Sources {
		src.State = func() (State, error) { return State{Queued: n, OldestQueued: oldest}, nil }
		return src
	}
	justStarted := healthConfig()
	justStarted.Started = t0.Add(-10 * time.Second)

	tests := []struct {
		name   string
		src    Sources
		health HealthConfig
		code   int
		want   string
	}{
		{"healthy", fakeSources(), healthConfig(), 200, "ok"},
		{"terminal mode, router fresh", func() Sources { s := fakeSources(); s.Telegram = nil; return s }(), healthConfig(), 200, "ok"},
		{"router stale", stale(fakeSources(), 12*time.Minute, "watcher: unable to list port mappings: connection refused"), healthConfig(), 503,
			"router 192.168.1.1 not read for 12m (last error: watcher: unable to list port mappings: connection refused)"},
		{"router stale, terminal mode", func() Sources { s := stale(fakeSources(), 7*time.Minute, ""); s.Telegram = nil; return s }(), healthConfig(), 503,
			"router 192.168.1.1 not read for 7m"},
		{"no router found", func() Sources {
			s := fakeSources()
			s.Services = func() []watcher.ServiceStatus { return nil }
			return s
		}(), healthConfig(), 503,
			"no router found in the 1h0m since doorman started"},
		{"no router yet, just started", func() Sources {
			s := fakeSources()
			s.Services = func() []watcher.ServiceStatus { return nil }
			return s
		}(), justStarted, 200, "ok"},
		{"token rejected", withTelegram(fakeSources(), Telegram{LastError: "telegram: unable to getMe: Unauthorized (401)", TokenRejected: true}), healthConfig(), 503,
			"Telegram rejected the bot token (401)"},
		{"Telegram never answered", withTelegram(fakeSources(), Telegram{LastError: "telegram: unable to getMe: dial tcp: i/o timeout"}), healthConfig(), 503,
			"Telegram has not answered since doorman started 1h0m ago (last error: telegram: unable to getMe: dial tcp: i/o timeout)"},
		{"Telegram never answered, just started", withTelegram(fakeSources(), Telegram{}), justStarted, 200, "ok"},
		{"Telegram quiet for long", withTelegram(fakeSources(), Telegram{LastOK: t0.Add(-20 * time.Minute), LastError: "HTTP 502"}), healthConfig(), 503,
			"Telegram has not answered for 20m (last error: HTTP 502)"},
		{"never sent", withQueue(withTelegram(fakeSources(), Telegram{LastOK: t0.Add(-time.Minute), LastError: "telegram: unable to sendMessage: Bad Request: chat not found (400)"}), 3, t0.Add(-50*time.Minute)), healthConfig(), 503,
			"3 message(s) waiting to be sent, the oldest for 50m (last error: telegram: unable to sendMessage: Bad Request: chat not found (400))"},
		{"queued just now", withQueue(fakeSources(), 1, t0.Add(-time.Second)), healthConfig(), 200, "ok"},
		{"database cannot be written", func() Sources {
			s := fakeSources()
			s.WriteFault = func() *storage.WriteFault {
				return &storage.WriteFault{Since: t0.Add(-5 * time.Minute), Count: 12, Err: errors.New("storage: /var/lib/doorman/doorman.db: unable to save changes: database cannot be written: write /var/lib/doorman/doorman.db: read-only file system")}
			}
			return s
		}(), justStarted, 503,
			"database: cannot write for 5m (12 failed): storage: /var/lib/doorman/doorman.db: unable to save changes: database cannot be written: write /var/lib/doorman/doorman.db: read-only file system"},
		{"database written again", func() Sources {
			s := fakeSources()
			s.WriteFault = func() *storage.WriteFault { return nil }
			return s
		}(), healthConfig(), 200, "ok"},
		{"router and Telegram", withTelegram(stale(fakeSources(), time.Hour, ""), Telegram{TokenRejected: true}), healthConfig(), 503,
			"router 192.168.1.1 not read for 1h0m; Telegram rejected the bot token (401)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.src)
			cfg.Health = tt.health
			code, body := get(t, serve(t, cfg).URL+"/healthz")
			if code != tt.code {
				t.Errorf("status %d, want %d: %q", code, tt.code, body)
			}
			if strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
				t.Errorf("body is not one line: %q", body)
			}
			if tt.want != "" && strings.TrimSuffix(body, "\n") != tt.want {
				t.Errorf("body %q\n want %q", body, tt.want)
			}
		})
	}
}

func TestHealthzNeverRead(t *testing.T) {
	src := fakeSources()
	src.Services = func() []watcher.ServiceStatus {
		return []watcher.ServiceStatus{{Router: routerA, Service: ipConn2, LastError: "no route to host"}}
	}
	ok, reason := Check(t0, healthConfig(), src)
	if want := "router 192.168.1.1 not read since doorman started 1h0m ago (last error: no route to host)"; ok || reason != want {
		t.Errorf("Check = %v, %q; want false, %q", ok, reason, want)
	}
}

func TestServeShutsDownWithContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := testConfig(fakeSources())
	go func() { done <- ServeListener(ctx, ln, cfg) }()
	code, body := get(t, "http://"+ln.Addr().String()+"/healthz")
	if code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	code, _ = get(t, "http://"+ln.Addr().String()+"/nothing")
	if code != http.StatusNotFound {
		t.Errorf("/nothing = %d, want 404", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeListener = %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeListener did not return after the context was cancelled")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

func TestServeAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(fakeSources())
	cfg.Addr = ln.Addr().String()
	err = Serve(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "unable to listen on "+cfg.Addr) || strings.Contains(err.Error(), "DOORMAN_") {
		t.Errorf("Serve on a port in use = %v, want the address and no setting's name", err)
	}
}

// ReadState derives the numbers from a real database.
func TestReadState(t *testing.T) {
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(t.TempDir(), "doorman.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := func(port uint16, client, desc string) watcher.Mapping {
		return watcher.Mapping{Router: routerA, Service: ipConn2, Protocol: "TCP", ExternalPort: port,
			InternalClient: client, InternalPort: port, Enabled: true, Description: desc}
	}
	err = db.Update(func(tx *storage.Tx) error {
		trusted, blocked, pending, undecided, gone := m(32400, "192.168.1.20", "Plex"), m(8080, "192.168.1.34", "cam"), m(5000, "192.168.1.40", "nas"), m(7777, "192.168.1.41", "game"), m(9999, "192.168.1.42", "old")
		for _, r := range []storage.Rule{
			{Kind: storage.RuleTrust, Service: storage.ServiceOf(trusted)},
			{Kind: storage.RuleBlock, Service: storage.ServiceOf(blocked)},
		} {
			if err := tx.PutRule(&r); err != nil {
				return err
			}
		}
		alerts := []storage.Alert{
			{State: storage.AlertAllowed, MessageID: 11},
			{State: storage.AlertBlocked, MessageID: 12},
			{State: storage.AlertPending, MessageID: 13},
			{State: storage.AlertPending}, // not sent yet
			{State: storage.AlertAllowed, MessageID: 15},
		}
		for i := range alerts {
			if err := tx.PutAlert(&alerts[i]); err != nil {
				return err
			}
		}
		for _, s := range []storage.Share{
			{Mapping: trusted, AlertID: alerts[0].ID},
			{Mapping: blocked, AlertID: alerts[1].ID},
			{Mapping: pending, AlertID: alerts[2].ID},
			{Mapping: undecided},
			{Mapping: gone, GoneAt: t0},
		} {
			if err := tx.PutShare(s); err != nil {
				return err
			}
		}
		for _, at := range []time.Time{t0.Add(-time.Hour), t0} {
			if err := tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxNotice, ChatID: 1, Text: "hi", CreatedAt: at}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(db)
	if err != nil {
		t.Fatal(err)
	}
	want := map[ShareKey]int{{routerA, ShareTrusted}: 1, {routerA, ShareBlocked}: 1, {routerA, SharePending}: 1, {routerA, ShareUndecided}: 1}
	if fmt.Sprint(st.Shares) != fmt.Sprint(want) {
		t.Errorf("Shares = %v, want %v", st.Shares, want)
	}
	if st.AlertsSent != 4 || st.Decisions[storage.AlertAllowed] != 2 || st.Decisions[storage.AlertBlocked] != 1 {
		t.Errorf("AlertsSent = %d, Decisions = %v; want 4, 2 allowed, 1 blocked", st.AlertsSent, st.Decisions)
	}
	if st.Rules[storage.RuleTrust] != 1 || st.Rules[storage.RuleBlock] != 1 {
		t.Errorf("Rules = %v", st.Rules)
	}
	if st.Queued != 2 || !st.OldestQueued.Equal(t0.Add(-time.Hour)) {
		t.Errorf("Queued = %d, oldest %v; want 2, %v", st.Queued, st.OldestQueued, t0.Add(-time.Hour))
	}
}

// TestHealthzUnwritableDatabase: a database on a read-only file system
// makes /healthz say so, with the reason.
func TestHealthzUnwritableDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorman.db")
	db, err := storage.Open(context.Background(), path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	readOnlyMount := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		if flag&(os.O_RDWR|os.O_WRONLY) != 0 {
			return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EROFS}
		}
		return os.OpenFile(name, flag, perm)
	}
	db, err = storage.Open(context.Background(), path, storage.Options{OpenFile: readOnlyMount})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src := fakeSources()
	src.WriteFault = db.WriteFault
	code, body := get(t, serve(t, testConfig(src)).URL+"/healthz")
	if code != 503 || !strings.HasPrefix(body, "database: cannot write") || !strings.Contains(body, "read-only file system") {
		t.Errorf("/healthz = %d %q, want 503 and the reason", code, body)
	}
	_, metrics := get(t, serve(t, testConfig(src)).URL+"/metrics")
	if !strings.Contains(metrics, "doorman_state_write_failing 1") {
		t.Error("doorman_state_write_failing is not 1")
	}
}
