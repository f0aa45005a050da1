package watcher

// The Watcher: it finds the gateways, keeps one gatewayWatch per gateway and
// routes Status, Gateways, Refresh and DeleteMapping, and the callback
// server's NOTIFYs (by path), to the right one.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

const (
	// While no router is found, discovery is tried again after 1 s, 2 s,
	// 4 s … up to a minute: a router that reboots is back within that.
	discoveryRetryMin = time.Second
	discoveryRetryMax = time.Minute
	// maxWatchedGateways bounds the routers watched, whatever discovery
	// and the configuration bring: a home has one.
	maxWatchedGateways = 8
)

// Watcher keeps the port mappings of the gateways in view: it lists every
// connection service at start, whenever the router sends an event, after a
// router restart, and on a timer.
//
// Locks are taken in the order gatewayWatch.mu, then Watcher.mu or
// serviceWatch.mu; Watcher.mu is never held while taking another.
type Watcher struct {
	c   *Client
	cfg WatchConfig
	log *slog.Logger

	// listenSSDP joins the SSDP multicast group; tests replace it with a
	// loopback socket.
	listenSSDP func(local netip.Addr) (net.PacketConn, error)
	// firstEventWait is how long the router's initial event may take
	// before events count as not reaching doorman; a field for tests.
	firstEventWait time.Duration

	// mu guards the fields below.
	mu        sync.Mutex
	running   bool
	cbHost    string
	cbPort    string
	gateways  []*gatewayWatch
	byPath    map[string]*serviceWatch
	callbacks map[string]*callbackServer
	srvWG     sync.WaitGroup
}

// NewWatcher returns a Watcher over the gateways c finds.
func (c *Client) NewWatcher(cfg WatchConfig) *Watcher {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.SafetyPollInterval <= 0 {
		cfg.SafetyPollInterval = DefaultSafetyPollInterval
	}
	if cfg.SubscriptionTimeout <= 0 {
		cfg.SubscriptionTimeout = DefaultSubscriptionTimeout
	}
	cfg.SubscriptionTimeout = max(cfg.SubscriptionTimeout, minSubscriptionTimeout)
	return &Watcher{
		c:              c,
		cfg:            cfg,
		log:            c.logger,
		listenSSDP:     listenSSDPMulticast,
		firstEventWait: defaultFirstEventWait,
		byPath:         map[string]*serviceWatch{},
		callbacks:      map[string]*callbackServer{},
	}
}

// Run watches until ctx is done, and returns after every goroutine it
// started has stopped (an OnSnapshot call in progress included) and the
// subscriptions are cancelled. It returns nil then; an error only for a
// configuration it cannot use or when it is already running.
//
// It finds the gateways with Client.Gateways, trying again with backoff
// while there is none (the router may be down), subscribes to their events,
// lists every service once (Reason "start"), then on events and polls.
func (w *Watcher) Run(ctx context.Context) error {
	host, port, err := parseCallbackAddr(w.cfg.CallbackAddr)
	if err != nil {
		return err
	}
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("watcher: Run is already running")
	}
	w.running = true
	w.cbHost, w.cbPort = host, port
	w.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		w.closeCallbacks()
		w.mu.Lock()
		w.running = false
		w.gateways = nil
		w.byPath = map[string]*serviceWatch{}
		w.mu.Unlock()
	}()

	delay := discoveryRetryMin
	for {
		gws, err := w.c.Gateways(ctx)
		if ctx.Err() != nil {
			return nil
		}
		for _, gw := range gws {
			w.startGateway(ctx, &wg, gw)
		}
		if err == nil && len(gws) > 0 {
			break
		}
		if len(w.Gateways()) == 0 {
			w.log.Warn("no router found; trying again", "err", err, "retry_in", delay)
		} else {
			w.log.Warn("not every configured router answered; trying the others again", "err", err, "retry_in", delay)
		}
		if !sleepCtx(ctx, delay) {
			return nil
		}
		delay = min(delay*2, discoveryRetryMax)
	}
	<-ctx.Done()
	return nil
}

// Status says how each watched service is watched.
func (w *Watcher) Status() []ServiceStatus {
	var out []ServiceStatus
	for _, g := range w.gatewayWatches() {
		for _, sw := range g.serviceWatches() {
			out = append(out, sw.status())
		}
	}
	return out
}

// Gateways returns the gateways being watched, as last described.
func (w *Watcher) Gateways() []*Gateway {
	var out []*Gateway
	for _, g := range w.gatewayWatches() {
		out = append(out, g.gateway())
	}
	return out
}

// Refresh asks for every service to be listed again now (Reason "refresh"),
// e.g. after a mapping was deleted. It does not wait; requests that come
// while a listing runs are folded into one more listing.
func (w *Watcher) Refresh() {
	for _, g := range w.gatewayWatches() {
		for _, sw := range g.serviceWatches() {
			sw.signal(ReasonRefresh)
		}
	}
}

// DeleteMapping deletes k from the watched gateway that k.Router names (see
// gatewayFor and Client.DeleteMapping) and then has that service listed
// again. A refused delete changed nothing, and re-listing after it would
// feed a block rule's retry straight back into another refused delete.
func (w *Watcher) DeleteMapping(ctx context.Context, k Key) error {
	g := w.gatewayFor(k.Router)
	if g == nil {
		return &DeleteError{Key: k, Err: fmt.Errorf("%w: %s is not among the watched routers", ErrNoGateway, k.Router)}
	}
	gw, sw := g.service(k.Service)
	err := w.c.DeleteMapping(ctx, gw, k)
	if sw != nil && err == nil {
		sw.signal(ReasonRefresh)
	}
	return err
}

// gatewayFor returns the watch of the router that id (a Mapping.Router)
// names: the one with that identity, else the one on its host that has its
// UDN, else the only one on its host (a router that made up a new UUID at
// its last boot); nil if none.
func (w *Watcher) gatewayFor(id string) *gatewayWatch {
	gs := w.gatewayWatches()
	var onHost []*gatewayWatch
	for _, g := range gs {
		gw := g.gateway()
		if gw.ID == id {
			return g
		}
		if gw.Host() == RouterHost(id) {
			onHost = append(onHost, g)
		}
	}
	for _, g := range onHost {
		if g.gateway().isRouter(id, false) {
			return g
		}
	}
	if len(onHost) == 1 {
		return onHost[0]
	}
	return nil
}

func (w *Watcher) gatewayWatches() []*gatewayWatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.gateways)
}

// startGateway starts watching gw unless it is watched already. Only Run's
// goroutine calls it.
func (w *Watcher) startGateway(ctx context.Context, wg *sync.WaitGroup, gw *Gateway) {
	gs := w.gatewayWatches()
	for _, g := range gs {
		if sameURL(g.origURL, gw.URL) || sameRouter(g.gateway(), gw) {
			return
		}
	}
	if len(gs) >= maxWatchedGateways {
		w.log.Warn("not watching another router: too many", "url", gw.URL, "watched", len(gs))
		return
	}
	g := &gatewayWatch{
		w:        w,
		origURL:  gw.URL,
		log:      w.log.With("router", gw.URL, "router_id", gw.ID),
		restart:  make(chan struct{}, 1),
		deferred: make(chan time.Time, 1),
		services: map[string]*serviceWatch{},
	}
	g.setGatewayLocked(gw) // g is not shared yet
	w.mu.Lock()
	w.gateways = append(w.gateways, g)
	w.mu.Unlock()
	types := make([]string, len(gw.Services))
	for i, s := range gw.Services {
		types[i] = s.ShortType()
	}
	g.log.Info("watching router", "name", gw.FriendlyName, "model", gw.ModelName, "services", types)
	wg.Go(func() { g.run(ctx) })
}

func (w *Watcher) register(sw *serviceWatch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byPath[sw.path] = sw
}

func (w *Watcher) unregister(sw *serviceWatch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.byPath, sw.path)
}

func (w *Watcher) serviceByPath(path string) *serviceWatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byPath[path]
}

// sleepCtx waits d, or less if ctx is done first; false then.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
