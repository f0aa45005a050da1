package watcher

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
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
	listenHost, advertise := callbackHosts(host, local)
	path := "/probe/" + randomToken()
	notify, delivered := probeHandler(path, router)
	var wg sync.WaitGroup
	srv, moved, err := startCallbackServer(listenHost, port, true, notify, c.logger, &wg)
	probe.PortInUse = moved
	if err != nil {
		return probe, err
	}
	defer func() {
		srv.shutdown(ctx)
		wg.Wait()
	}()
	probe.Callback = srv.base(advertise) + path

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

// probeHandler answers the router's NOTIFY on path, and closes delivered at
// the first one.
func probeHandler(path string, router netip.Addr) (h http.Handler, delivered <-chan struct{}) {
	done := make(chan struct{})
	var once sync.Once
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		// Only the router's NOTIFY on this path counts.
		src, err := netip.ParseAddrPort(r.RemoteAddr)
		if r.Method != "NOTIFY" || r.URL.Path != path || err != nil || src.Addr().Unmap() != router {
			http.Error(rw, "not the probe's event", http.StatusPreconditionFailed)
			return
		}
		rw.WriteHeader(http.StatusOK)
		once.Do(func() { close(done) })
	}), done
}
