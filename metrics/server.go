package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// shutdownTimeout bounds how long a scrape in progress may delay doorman's
// exit.
const shutdownTimeout = 5 * time.Second

// Config configures the metrics server.
type Config struct {
	// Addr is host:port to listen on.
	Addr    string
	Sources Sources
	Health  HealthConfig
	// Version is doorman's version, for doorman_build_info.
	Version string
	Logger  *slog.Logger

	// Now is the clock of the health check; nil means time.Now.
	Now func() time.Time
}

// Handler serves /metrics (doorman's metrics and the Go runtime's and the
// process's, from a registry of its own) and /healthz.
func Handler(cfg Config) (http.Handler, error) {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// A registry per handler, not the default one: nothing global to
	// collide with in tests, and no metrics registered by libraries
	// behind doorman's back.
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(cfg.Sources, cfg.Health, cfg.Version, now),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: unable to register a collector: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
		Timeout:       10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ok, reason := Check(now(), cfg.Health, cfg.Sources)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, reason+"\n")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "doorman: /metrics (Prometheus), /healthz (200 ok or 503 and the reason)\n")
	})
	return mux, nil
}

// Serve listens on cfg.Addr and serves Handler until ctx is done.
func Serve(ctx context.Context, cfg Config) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("metrics: unable to listen on %s: %w", cfg.Addr, err)
	}
	return ServeListener(ctx, ln, cfg)
}

// ServeListener is Serve on a listener of the caller's, which it closes.
func ServeListener(ctx context.Context, ln net.Listener, cfg Config) error {
	h, err := Handler(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	logger.Info("serving metrics and health", "addr", ln.Addr().String(), "paths", "/metrics /healthz")
	select {
	case err := <-done:
		return fmt.Errorf("metrics: server on %s stopped: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: server on %s: %w", ln.Addr(), err)
	}
	return nil
}
