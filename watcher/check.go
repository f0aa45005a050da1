package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// ErrNoEventURL means a service has no usable eventSubURL: the router sends
// no events for it, and a Watcher polls it.
var ErrNoEventURL = errNoEventURL

// probeSubscriptionTimeout is what a probe asks for: short, so that a router
// that misses the UNSUBSCRIBE forgets the subscription soon by itself.
const probeSubscriptionTimeout = 60 * time.Second

// EventsProbe is what ProbeEvents found out.
type EventsProbe struct {
	// Callback is where the router was asked to send events.
	Callback string
	// PortInUse is set when CallbackAddr names a port that something else
	// (a running doorman, usually) holds; the probe then listened on
	// another port of the same address.
	PortInUse bool
	// Granted is how long the router granted the subscription for.
	Granted time.Duration
	// Delivered is set when the router's initial event reached the
	// callback within the wait.
	Delivered bool
}

// ProbeEvents tells whether events from svc would work: it subscribes the way
// a Watcher does (callbackAddr as in WatchConfig.CallbackAddr), waits up to
// wait for the initial event the router sends to a new subscriber, and
// unsubscribes at once. It changes nothing on the router beyond that
// short-lived subscription. The error is ErrNoEventURL (wrapped) for a
// service without events, a *GENAError when the router refuses the
// SUBSCRIBE, and others when it cannot be reached or doorman cannot listen.
func (c *Client) ProbeEvents(ctx context.Context, gw *Gateway, svc *Service, callbackAddr string, wait time.Duration) (EventsProbe, error) {
	var probe EventsProbe
	if svc.EventSubURL == "" {
		return probe, fmt.Errorf("watcher: %s of %s: %w", svc.ShortType(), gw.URL, ErrNoEventURL)
	}
	host, port, err := parseCallbackAddr(callbackAddr)
	if err != nil {
		return probe, err
	}
	router, local, err := addressesTowards(ctx, gw.URL)
	if err != nil {
		return probe, fmt.Errorf("watcher: unable to find doorman's address towards %s: %w", gw.URL, err)
	}
	listenHost, advertise := host, host
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		advertise = local.String()
		if host == "" {
			listenHost = advertise
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, port))
	if err != nil && port != "0" && errors.Is(err, syscall.EADDRINUSE) {
		probe.PortInUse = true
		ln, err = net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	}
	if err != nil {
		return probe, fmt.Errorf("watcher: unable to listen for router events on %s: %w", net.JoinHostPort(listenHost, port), err)
	}
	_, lnPort, _ := net.SplitHostPort(ln.Addr().String())
	path := "/probe/" + randomToken()
	probe.Callback = "http://" + net.JoinHostPort(advertise, lnPort) + path

	delivered := make(chan struct{})
	var once sync.Once
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			// Only the router's NOTIFY on this path counts.
			src, err := netip.ParseAddrPort(r.RemoteAddr)
			if r.Method != "NOTIFY" || r.URL.Path != path || err != nil || src.Addr().Unmap() != router {
				http.Error(rw, "not the probe's event", http.StatusPreconditionFailed)
				return
			}
			rw.WriteHeader(http.StatusOK)
			once.Do(func() { close(delivered) })
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(c.logger.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		wg.Wait()
	}()

	sub, err := c.subscribe(ctx, svc.EventSubURL, probe.Callback, probeSubscriptionTimeout)
	if err != nil {
		return probe, err
	}
	probe.Granted = sub.timeout
	t := time.NewTimer(wait)
	select {
	case <-delivered:
		probe.Delivered = true
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	// Even when the caller gave up: the router should not keep sending to
	// a port nobody listens on.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(unsubscribeTimeout, c.requestTimeout))
	defer cancel()
	if err := c.unsubscribe(uctx, svc.EventSubURL, sub.sid); err != nil {
		c.logger.Debug("UNSUBSCRIBE after the events probe failed; the router forgets the subscription by itself", "router", gw.URL, "err", err, "timeout", sub.timeout)
	}
	if ctx.Err() != nil {
		return probe, fmt.Errorf("watcher: events probe of %s: %w", gw.URL, ctx.Err())
	}
	return probe, nil
}

// addressesTowards returns the router's IP and doorman's own address towards
// it, as a Watcher finds them: the local address of a UDP socket connected
// to the router, which the kernel picks without sending anything.
func addressesTowards(ctx context.Context, rawURL string) (router, local netip.Addr, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return router, local, fmt.Errorf("router URL: %w", err)
	}
	router, err = netip.ParseAddr(u.Hostname())
	if err != nil {
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
		if lerr != nil || len(addrs) == 0 {
			return router, local, fmt.Errorf("unable to resolve the router's name %q: %v", u.Hostname(), lerr)
		}
		router = addrs[0]
	}
	router = router.Unmap()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(router, ssdpPort)))
	if err != nil {
		return router, local, fmt.Errorf("no route to the router %s: %w", router, err)
	}
	defer conn.Close()
	return router, conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
