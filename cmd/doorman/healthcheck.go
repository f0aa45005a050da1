package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/doorman-upnp/doorman/bot"
	"github.com/doorman-upnp/doorman/metrics"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

const (
	// healthcheckTimeout stays below the Dockerfile's HEALTHCHECK
	// --timeout of 10s, so that the reason is printed before Docker
	// gives up on the command.
	healthcheckTimeout = 5 * time.Second
	// telegramMaxAge is how long Telegram may go without answering, and
	// how long a message may wait, before /healthz says so. The outbox
	// backs off up to 5 minutes after an outage; this leaves it one more
	// try.
	telegramMaxAge = 10 * time.Minute
)

// runHealthcheck asks the running doorman's /healthz, for the Dockerfile's
// HEALTHCHECK. It exits 0 when doorman is healthy and 1 otherwise, never 2:
// Docker reserves that code.
func runHealthcheck(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("healthcheck", "healthcheck [flags]", e)
	load := configFlags(fs)
	if code, done := parseFlags(fs, args); done {
		return min(code, 1)
	}
	cfg, err := load(e.getenv)
	if err != nil {
		printError(e.stderr, err)
		return 1
	}
	if cfg.MetricsAddr == "" {
		fmt.Fprintln(e.stderr, "doorman: the health check asks the running doorman at DOORMAN_METRICS_ADDR, which is not set; set it for doorman run and doorman healthcheck alike, for example DOORMAN_METRICS_ADDR=127.0.0.1:9177")
		return 1
	}
	u, err := healthzURL(cfg.MetricsAddr)
	if err != nil {
		printError(e.stderr, err)
		return 1
	}
	healthy, reason, err := getHealthz(ctx, u)
	switch {
	case err != nil:
		printError(e.stderr, fmt.Errorf("no answer from %s (is doorman running with DOORMAN_METRICS_ADDR=%s?): %w", u, cfg.MetricsAddr, err))
		return 1
	case !healthy:
		printError(e.stderr, fmt.Errorf("unhealthy: %s", reason))
		return 1
	}
	fmt.Fprintln(e.stdout, "doorman: healthy")
	return 0
}

// healthzURL is where a doorman listening on addr answers: on loopback when
// it listens on every address.
func healthzURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("DOORMAN_METRICS_ADDR %q is not host:port: %w", addr, err)
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if err == nil && ip.Is6() {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// getHealthz asks u; reason is /healthz's one line.
func getHealthz(ctx context.Context, u string) (healthy bool, reason string, err error) {
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, "", err
	}
	client := &http.Client{
		// Never through a proxy: the answer is on this machine.
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return false, "", fmt.Errorf("unable to read the answer: %w", err)
	}
	line, _, _ := strings.Cut(string(body), "\n")
	line = strings.Join(strings.Fields(line), " ")
	switch resp.StatusCode {
	case http.StatusOK:
		return true, line, nil
	case http.StatusServiceUnavailable:
		return false, line, nil
	}
	return false, "", fmt.Errorf("HTTP %s, not doorman's /healthz", resp.Status)
}

// monitored is what the metrics server reads; api and outbox are nil
// without Telegram.
type monitored struct {
	db      *storage.DB
	client  *watcher.Client
	watcher *watcher.Watcher
	api     *bot.TelegramAPI
	outbox  *bot.Outbox
}

// withMetrics adds the metrics server to the daemon's parts when
// DOORMAN_METRICS_ADDR is set.
func withMetrics(parts []func(context.Context) error, cfg config, logger *slog.Logger, m monitored) []func(context.Context) error {
	if cfg.MetricsAddr == "" {
		return parts
	}
	src := metrics.Sources{
		Services:     m.watcher.Status,
		State:        func() (metrics.State, error) { return metrics.ReadState(m.db) },
		RouterErrors: m.client.RequestErrors,
		WriteFault:   m.db.WriteFault,
	}
	var tg *telegramHealth
	if m.api != nil {
		tg = &telegramHealth{api: m.api, outbox: m.outbox, every: telegramMaxAge / 3, logger: logger}
		src.Telegram = tg.state
	}
	mcfg := metrics.Config{
		Addr:    cfg.MetricsAddr,
		Sources: src,
		Health: metrics.HealthConfig{
			RouterMaxAge:   routerMaxAge(cfg),
			TelegramMaxAge: telegramMaxAge,
			Started:        time.Now(),
		},
		Version: version,
		Logger:  logger,
	}
	return append(parts, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		if tg != nil {
			wg.Go(func() { tg.run(ctx) })
		}
		err := metrics.Serve(ctx, mcfg)
		if err != nil && ctx.Err() == nil {
			// The metrics package does not know the setting's name.
			err = fmt.Errorf("DOORMAN_METRICS_ADDR: %w", err)
		}
		cancel()
		wg.Wait()
		return err
	})
}

// routerMaxAge is how old the last reading of the router may be: doorman
// reads it every poll interval without events and every safety poll interval
// with them; the slack covers a failed reading or two and a slow router.
func routerMaxAge(cfg config) time.Duration {
	return max(3*cfg.PollInterval, cfg.SafetyPoll+time.Minute)
}

// telegramHealth tells whether Telegram answers doorman. Deliveries count
// (the outbox's health); while there is nothing to deliver, a getMe every
// few minutes does, so that a quiet week does not look like an outage and a
// revoked token shows before the next alert is due.
type telegramHealth struct {
	api interface {
		GetMe(ctx context.Context) (bot.User, error)
	}
	outbox *bot.Outbox
	every  time.Duration
	logger *slog.Logger

	mu        sync.Mutex
	checkOK   time.Time
	checkErr  error
	checkErrT time.Time
}

// run checks at once, then whenever nothing answered for a while, until ctx
// is done.
func (h *telegramHealth) run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(h.state().LastOK) >= h.every {
			h.check(ctx)
		}
		t.Reset(h.every)
	}
}

func (h *telegramHealth) check(ctx context.Context) {
	_, err := h.api.GetMe(ctx)
	if ctx.Err() != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.checkErr, h.checkErrT = err, time.Now()
		h.logger.Debug("health check of Telegram failed", "err", err)
		return
	}
	h.checkOK, h.checkErr = time.Now(), nil
}

func (h *telegramHealth) state() metrics.Telegram {
	var delivered time.Time
	var deliveryErr error
	if h.outbox != nil {
		delivered, deliveryErr = h.outbox.Health()
	}
	h.mu.Lock()
	checked, checkErr, checkErrT := h.checkOK, h.checkErr, h.checkErrT
	h.mu.Unlock()
	// A failed check that a delivery proved wrong since is forgotten.
	if checkErr != nil && delivered.After(checkErrT) {
		checkErr = nil
	}
	t := metrics.Telegram{LastOK: checked}
	if delivered.After(t.LastOK) {
		t.LastOK = delivered
	}
	if err := errors.Join(deliveryErr, checkErr); err != nil {
		t.LastError = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	t.TokenRejected = bot.IsUnauthorized(deliveryErr) || bot.IsUnauthorized(checkErr)
	return t
}
