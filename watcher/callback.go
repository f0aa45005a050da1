package watcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// callbackServer is one event callback server; services whose routers are
// reached from the same local address share it, each on its own path.
type callbackServer struct {
	srv  *http.Server
	port string
}

// callbackBase returns "http://IP:PORT" of the callback server for a router
// reached from local, starting the server if needed.
func (w *Watcher) callbackBase(local netip.Addr) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		return "", errors.New("watcher: stopped")
	}
	listenHost, advertise := w.cbHost, w.cbHost
	if ip, err := netip.ParseAddr(w.cbHost); w.cbHost == "" || (err == nil && ip.IsUnspecified()) {
		advertise = local.Unmap().String()
		if w.cbHost == "" {
			listenHost = advertise
		}
	}
	s := w.callbacks[listenHost]
	if s == nil {
		ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, w.cbPort))
		if err != nil {
			return "", fmt.Errorf("watcher: unable to listen for router events on %s: %w", net.JoinHostPort(listenHost, w.cbPort), err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		srv := &http.Server{
			Handler:           http.HandlerFunc(w.handleNotify),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       10 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(w.log.Handler(), slog.LevelDebug),
		}
		s = &callbackServer{srv: srv, port: port}
		w.callbacks[listenHost] = s
		w.srvWG.Go(func() { _ = srv.Serve(ln) })
		w.log.Info("listening for router events", "addr", ln.Addr().String())
	}
	return "http://" + net.JoinHostPort(advertise, s.port), nil
}

func (w *Watcher) closeCallbacks() {
	w.mu.Lock()
	servers := w.callbacks
	w.callbacks = map[string]*callbackServer{}
	w.mu.Unlock()
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		cancel()
	}
	w.srvWG.Wait()
}

// parseCallbackAddr reads WatchConfig.CallbackAddr: "", "IP", ":PORT" or
// "IP:PORT".
func parseCallbackAddr(s string) (host, port string, err error) {
	if s == "" {
		return "", "0", nil
	}
	host, port, err = net.SplitHostPort(s)
	if err != nil {
		if _, perr := netip.ParseAddr(s); perr != nil {
			return "", "", fmt.Errorf("watcher: CallbackAddr %q is not IP:PORT", s)
		}
		host, port = s, "0"
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", "", fmt.Errorf("watcher: CallbackAddr %q: the host must be an IP address", s)
		}
	}
	if port == "" {
		port = "0"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", "", fmt.Errorf("watcher: CallbackAddr %q: bad port", s)
	}
	return host, port, nil
}

func randomToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
