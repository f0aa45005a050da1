package watcher

// The callback server: the HTTP server the routers send their NOTIFY
// messages to, for a Watcher and for ProbeEvents.

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
	"sync"
	"syscall"
	"time"
)

// callbackServer is one event callback server: an HTTP server taking the
// routers' NOTIFY messages. A Watcher shares one among the services whose
// routers are reached from the same local address, each on its own path;
// ProbeEvents starts one of its own.
type callbackServer struct {
	srv  *http.Server
	addr net.Addr
	port string
}

// callbackHosts returns the host a callback server for a router reached
// from local listens on, and the one the router is told to send to. host is
// that of WatchConfig.CallbackAddr: empty means local; an unspecified
// address ("0.0.0.0") listens everywhere and tells the router local.
func callbackHosts(host string, local netip.Addr) (listen, advertise string) {
	listen, advertise = host, host
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		advertise = local.Unmap().String()
		if host == "" {
			listen = advertise
		}
	}
	return listen, advertise
}

// startCallbackServer listens on host:port and serves h there, on a
// goroutine wg tracks, until shutdown. With movePort, a port in use (by a
// running doorman, usually) gives way to an ephemeral one, and moved says
// so.
func startCallbackServer(host, port string, movePort bool, h http.Handler, log *slog.Logger, wg *sync.WaitGroup) (s *callbackServer, moved bool, err error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil && movePort && port != "0" && errors.Is(err, syscall.EADDRINUSE) {
		moved = true
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return nil, false, fmt.Errorf("watcher: unable to listen for router events on %s: %w", net.JoinHostPort(host, port), err)
	}
	_, lnPort, _ := net.SplitHostPort(ln.Addr().String())
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	wg.Go(func() { _ = srv.Serve(ln) })
	return &callbackServer{srv: srv, addr: ln.Addr(), port: lnPort}, moved, nil
}

// base returns "http://IP:PORT" of s, with advertise as the IP.
func (s *callbackServer) base(advertise string) string {
	return "http://" + net.JoinHostPort(advertise, s.port)
}

// shutdown stops s, letting a NOTIFY in progress end within a second; the
// serving goroutine then returns.
func (s *callbackServer) shutdown(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
}

// callbackBase returns "http://IP:PORT" of the callback server for a router
// reached from local, starting the server if needed.
func (w *Watcher) callbackBase(local netip.Addr) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		return "", errors.New("watcher: stopped")
	}
	listenHost, advertise := callbackHosts(w.cbHost, local)
	s := w.callbacks[listenHost]
	if s == nil {
		var err error
		s, _, err = startCallbackServer(listenHost, w.cbPort, false, http.HandlerFunc(w.handleNotify), w.log, &w.srvWG)
		if err != nil {
			return "", err
		}
		w.callbacks[listenHost] = s
		w.log.Info("listening for router events", "addr", s.addr.String())
	}
	return s.base(advertise), nil
}

func (w *Watcher) closeCallbacks() {
	w.mu.Lock()
	servers := w.callbacks
	w.callbacks = map[string]*callbackServer{}
	w.mu.Unlock()
	for _, s := range servers {
		s.shutdown(context.Background())
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
