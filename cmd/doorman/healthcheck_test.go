package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot"
	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/storage/storagetest"
	"github.com/doorman-upnp/doorman/watcher"
)

// healthServer answers /healthz with status and body, on loopback.
func healthServer(t *testing.T, status int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestHealthcheckCommand(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	_, port, _ := net.SplitHostPort(healthServer(t, 200, "ok\n"))

	tests := []struct {
		name   string
		addr   string
		args   []string
		code   int
		stdout string
		stderr []string
	}{
		{"healthy", healthServer(t, 200, "ok\n"), nil, 0, "doorman: healthy\n", nil},
		{"listening on every address", ":" + port, nil, 0, "doorman: healthy\n", nil},
		{"unhealthy", healthServer(t, 503, "router 192.168.1.1 not read for 12m (last error: connection refused)\n"), nil, 1, "",
			[]string{"doorman: unhealthy: router 192.168.1.1 not read for 12m (last error: connection refused)"}},
		{"token rejected", healthServer(t, 503, "Telegram rejected the bot token (401)\n"), nil, 1, "",
			[]string{"unhealthy: Telegram rejected the bot token (401)"}},
		{"something else answers", healthServer(t, 404, "nope"), nil, 1, "", []string{"HTTP 404", "not doorman's /healthz"}},
		{"nobody answers", deadAddr, nil, 1, "", []string{"no answer from http://" + deadAddr + "/healthz", "is doorman running", "connection refused"}},
		{"not configured", "", nil, 1, "", []string{"DOORMAN_METRICS_ADDR", "not set", "127.0.0.1:9177"}},
		// Docker reserves exit code 2.
		{"bad flag", "", []string{"--nonsense"}, 1, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{}
			if tt.addr != "" {
				vars["DOORMAN_METRICS_ADDR"] = tt.addr
			}
			stdout, stderr, code := runCommand(t, vars, append([]string{"healthcheck"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			// A bad flag prints the usage.
			if tt.args == nil && stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr does not say %q: %s", s, stderr)
				}
			}
			if tt.code != 0 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 && tt.args == nil {
				t.Errorf("more than one line: %q", stderr)
			}
		})
	}
}

func TestHealthzURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:9177":   "http://127.0.0.1:9177/healthz",
		":9177":            "http://127.0.0.1:9177/healthz",
		"0.0.0.0:9177":     "http://127.0.0.1:9177/healthz",
		"[::]:9177":        "http://[::1]:9177/healthz",
		"192.168.1.5:9177": "http://192.168.1.5:9177/healthz",
		"localhost:9177":   "http://localhost:9177/healthz",
	} {
		if got, err := healthzURL(addr); err != nil || got != want {
			t.Errorf("healthzURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}

func TestMetricsAddrSetting(t *testing.T) {
	for v, ok := range map[string]bool{"127.0.0.1:9177": true, ":9177": true, "[::1]:9177": true, "9177": false, ":0": false, "host:": false, ":99999": false} {
		_, err := configFlags(newFlagSet("t", "t", env{stdout: io.Discard, stderr: io.Discard}))(func(k string) string {
			if k == "DOORMAN_METRICS_ADDR" {
				return v
			}
			return ""
		})
		if (err == nil) != ok {
			t.Errorf("DOORMAN_METRICS_ADDR=%q: err = %v, want ok = %v", v, err, ok)
		}
	}
}

// The metrics part of doorman run serves /metrics and /healthz, which
// doorman healthcheck reads, and stops with the context.
func TestMetricsPart(t *testing.T) {
	if parts := withMetrics(nil, defaultConfig(), slog.New(slog.DiscardHandler), monitored{}); len(parts) != 0 {
		t.Fatalf("withMetrics added %d part(s) without DOORMAN_METRICS_ADDR", len(parts))
	}

	db := openDB(t, filepath.Join(t.TempDir(), "doorman.db"))
	defer db.Close()
	// Not run: nothing is sent to a router.
	client := watcher.New(watcher.Config{IGDURLs: []string{"http://127.0.0.1:1/rootDesc.xml"}})
	w := client.NewWatcher(watcher.WatchConfig{})
	tg := telegramtest.NewServer(testToken)
	t.Cleanup(tg.Close)
	api, err := bot.NewTelegramAPI(bot.TelegramConfig{Token: testToken, BaseURL: tg.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	outbox := bot.NewOutbox(bot.OutboxConfig{API: api, DB: db})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := defaultConfig()
	cfg.MetricsAddr = addr
	parts := withMetrics(nil, cfg, slog.New(slog.DiscardHandler), monitored{db: db, client: client, watcher: w, api: api, outbox: outbox})
	if len(parts) != 1 {
		t.Fatalf("withMetrics added %d parts, want 1", len(parts))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- parts[0](ctx) }()

	// doorman just started: nothing read yet is no fault.
	deadline := time.Now().Add(10 * time.Second)
	for {
		stdout, stderr, code := runCommand(t, map[string]string{"DOORMAN_METRICS_ADDR": addr}, "healthcheck")
		if code == 0 && stdout == "doorman: healthy\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("doorman healthcheck: %d %s %s", code, stdout, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The Telegram check ran at once.
	for tg.Calls("getMe") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no getMe")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range []string{"doorman_alerts_sent_total 0", "doorman_messages_queued 0", "doorman_healthy 1", "go_goroutines", "doorman_build_info{version="} {
		if !strings.Contains(string(body), s) {
			t.Errorf("/metrics lacks %q", s)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("metrics part = %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("metrics part did not stop")
	}
}

// A metrics address that is taken stops doorman with the setting named.
func TestMetricsAddrInUse(t *testing.T) {
	db := storagetest.Open(t)
	client := watcher.New(watcher.Config{IGDURLs: []string{"http://127.0.0.1:1/rootDesc.xml"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := defaultConfig()
	cfg.MetricsAddr = ln.Addr().String()
	parts := withMetrics(nil, cfg, slog.New(slog.DiscardHandler), monitored{db: db, client: client, watcher: client.NewWatcher(watcher.WatchConfig{})})
	err = parts[0](context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "DOORMAN_METRICS_ADDR: metrics: unable to listen on "+cfg.MetricsAddr) {
		t.Errorf("metrics on a taken address = %v", err)
	}
}

type fakeGetMe struct{ err error }

func (f *fakeGetMe) GetMe(context.Context) (bot.User, error) { return bot.User{Username: "x"}, f.err }

func TestTelegramHealth(t *testing.T) {
	api := &fakeGetMe{err: &bot.APIError{Method: "getMe", Code: 401, Description: "Unauthorized"}}
	h := &telegramHealth{api: api, every: time.Minute, logger: slog.New(slog.DiscardHandler)}
	h.check(context.Background())
	if s := h.state(); !s.TokenRejected || !s.LastOK.IsZero() || !strings.Contains(s.LastError, "Unauthorized") {
		t.Errorf("after a 401: %+v", s)
	}
	api.err = errors.New("telegram: unable to getMe: no answer")
	h.check(context.Background())
	if s := h.state(); s.TokenRejected || !s.LastOK.IsZero() || !strings.Contains(s.LastError, "no answer") {
		t.Errorf("after a timeout: %+v", s)
	}
	api.err = nil
	h.check(context.Background())
	if s := h.state(); s.TokenRejected || time.Since(s.LastOK) > time.Minute || s.LastError != "" {
		t.Errorf("after an answer: %+v", s)
	}
	// A check cut off by doorman stopping says nothing about Telegram.
	api.err = errors.New("context canceled")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.check(ctx)
	if s := h.state(); s.LastError != "" {
		t.Errorf("a cancelled check counted: %+v", s)
	}
}
