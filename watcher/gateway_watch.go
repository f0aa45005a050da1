package watcher

// One gateway's watch: doorman's address towards it, its services, its SSDP
// announcements (judged by restart.go) and, after a restart, its description
// read again.

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// restartFetchDelays are the pauses before each try to read the description
// of a router that announced itself: the announcement can come before its
// HTTP server answers. They add up to under 8 s, within the 10 s in which a
// restart must be noticed.
var restartFetchDelays = [...]time.Duration{0, 200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

// gatewayWatch watches one gateway: its services, its announcements, its
// restarts.
type gatewayWatch struct {
	w       *Watcher
	origURL string
	log     *slog.Logger
	// addr is the router's IP, local doorman's own towards it; set once in
	// run before anything reads them.
	addr  netip.Addr
	local netip.Addr
	// noEvents says why events cannot work for this gateway, if so.
	noEvents string
	// restart asks restartLoop to read the description again; deferred
	// tells it when a deferred restart is due (restartDeferred).
	restart  chan struct{}
	deferred chan time.Time

	// mu guards the fields below.
	mu sync.Mutex
	// gw is the description last read; set with setGatewayLocked.
	gw       *Gateway
	services map[string]*serviceWatch // by service type
	// restarts reads the router's announcements.
	restarts restartDetector
}

// gateway returns the router as last described.
func (g *gatewayWatch) gateway() *Gateway {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gw
}

// service returns the router as last described and the watch of its
// service of type typ, nil if it offers none.
func (g *gatewayWatch) service(typ string) (*Gateway, *serviceWatch) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if svc := g.gw.service(typ); svc != nil {
		typ = svc.Type
	}
	return g.gw, g.services[typ]
}

func (g *gatewayWatch) serviceWatches() []*serviceWatch {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*serviceWatch
	for _, s := range g.gw.Services {
		if sw := g.services[s.Type]; sw != nil {
			out = append(out, sw)
		}
	}
	return out
}

func (g *gatewayWatch) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var err error
	if g.addr, g.local, err = addressesTowards(ctx, g.origURL); err != nil {
		g.noEvents = err.Error()
		g.log.Warn("doorman cannot receive events from this router; polling only", "err", err)
	}
	g.mu.Lock()
	for _, svc := range g.gw.Services {
		g.addServiceLocked(ctx, &wg, g.gw, svc, ReasonStart)
	}
	g.mu.Unlock()
	if g.local.IsValid() {
		wg.Go(func() { g.ssdpLoop(ctx) })
	}
	wg.Go(func() { g.restartLoop(ctx, &wg) })
	<-ctx.Done()
}

// subscriptionsLost makes the router's next ssdp:alive count as a restart.
func (g *gatewayWatch) subscriptionsLost() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.restarts.subscriptionsLost()
}

// addServiceLocked starts watching svc, on goroutines wg tracks. g.mu must
// be held.
func (g *gatewayWatch) addServiceLocked(ctx context.Context, wg *sync.WaitGroup, gw *Gateway, svc *Service, first string) {
	ctx, cancel := context.WithCancel(ctx)
	sw := &serviceWatch{
		g:       g,
		typ:     svc.Type,
		path:    "/doorman/events/" + randomToken(),
		log:     g.w.log.With("router", gw.URL, "service", svc.ShortType()),
		cancel:  cancel,
		dirty:   make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		resub:   make(chan struct{}, 1),
		check:   make(chan struct{}, 1),
		initial: make(chan struct{}, 1),
		gw:      gw,
		svc:     svc,
	}
	g.services[svc.Type] = sw
	g.w.register(sw)
	wg.Go(func() { sw.listLoop(ctx) })
	wg.Go(func() { sw.manage(ctx, first) })
}

// ssdpLoop listens to the router's announcements until ctx is done. If it
// cannot listen, restarts are still noticed, later: by a failed renewal,
// and by the polls.
func (g *gatewayWatch) ssdpLoop(ctx context.Context) {
	pc, err := g.w.listenSSDP(g.local)
	if err != nil {
		g.log.Warn("cannot listen to the router's SSDP announcements; router restarts will be noticed late (at the next subscription renewal or poll)", "err", err)
		return
	}
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer pc.Close()
	buf := make([]byte, maxSSDPBytes+1)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Debug("reading SSDP announcements", "err", err)
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok || ua.AddrPort().Addr().Unmap() != g.addr {
			continue
		}
		m, err := parseSSDPNotify(buf[:n])
		if err != nil {
			if !errors.Is(err, errNotNotify) {
				g.log.Debug("unreadable SSDP message from the router", "err", err)
			}
			continue
		}
		g.log.Debug("SSDP announcement", "nts", m.NTS, "nt", m.NT, "bootid", m.BootID)
		g.onSSDP(m)
	}
}

// setGatewayLocked takes a newly read description. g.mu must be held.
func (g *gatewayWatch) setGatewayLocked(gw *Gateway) {
	g.gw = gw
	g.restarts.setGateway(gw)
}

// onSSDP takes an announcement from the router's address.
func (g *gatewayWatch) onSSDP(m ssdpMessage) {
	g.mu.Lock()
	act := g.restarts.observe(m, time.Now())
	services := slices.Collect(maps.Values(g.services))
	g.mu.Unlock()

	switch act.kind {
	case routerLeaving:
		g.log.Info("router announced that it is going away (ssdp:byebye)")
		for _, sw := range services {
			sw.eventsLost("the router said goodbye (ssdp:byebye)")
		}
	case routerRestarted:
		g.log.Debug("router restart noticed", "why", act.why, "bootid", m.BootID)
		poke(g.restart)
	case restartDeferred:
		g.log.Debug("router restart noticed within the re-listing interval; deferred", "why", act.why, "until", act.at)
		select {
		case g.deferred <- act.at:
		default:
		}
	case checkSubscriptions:
		for _, sw := range services {
			poke(sw.check)
		}
	}
}

// restartLoop handles router restarts: it reads the description again
// (URLs and services may have changed), then has every service subscribe
// anew and list.
func (g *gatewayWatch) restartLoop(ctx context.Context, wg *sync.WaitGroup) {
	deferred := time.NewTimer(time.Hour)
	deferred.Stop()
	defer deferred.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case at := <-g.deferred:
			deferred.Reset(time.Until(at))
			continue
		case <-deferred.C:
			g.mu.Lock()
			act := g.restarts.deferredDue(time.Now())
			g.mu.Unlock()
			if act.kind != routerRestarted {
				continue
			}
		case <-g.restart:
		}
		g.mu.Lock()
		why, descURL := g.restarts.restartLocation()
		cur := g.gw
		g.mu.Unlock()
		g.log.Info("router restarted; reading its description and subscribing again", "why", why)

		gw, err := g.fetchDescription(ctx, descURL)
		if moved := !sameURL(descURL, cur.URL); moved && ctx.Err() == nil && (err != nil || !sameDevice(cur, gw)) {
			// Anyone on the LAN can announce the router's UUID with
			// another URL; a move is believed once the router is found
			// there.
			g.log.Warn("an announcement moved the router's description, but doorman did not find the router there; keeping its URL",
				"announced", descURL, "err", err)
			gw, err = g.fetchDescription(ctx, cur.URL)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			g.log.Warn("router announced itself but its description cannot be read; trying its old URLs", "err", err)
			g.mu.Lock()
			g.restarts.subscriptionsLost()
			services := slices.Collect(maps.Values(g.services))
			g.mu.Unlock()
			for _, sw := range services {
				poke(sw.resub)
			}
			continue
		}
		g.w.c.logSkipped(gw)
		g.replace(ctx, wg, withTwins(gw, cur))
	}
}

// fetchDescription reads the description at descURL, trying again over
// restartFetchDelays.
func (g *gatewayWatch) fetchDescription(ctx context.Context, descURL string) (*Gateway, error) {
	var gw *Gateway
	var err error
	for _, d := range restartFetchDelays {
		if !sleepCtx(ctx, d) {
			return nil, ctx.Err()
		}
		if gw, err = g.w.c.fetchGateway(ctx, descURL); err == nil {
			return gw, nil
		}
	}
	return nil, err
}

// sameDevice reports whether a newly read description is the router's: on
// its host, naming one of its devices.
func sameDevice(cur, gw *Gateway) bool {
	return gw.Host() == cur.Host() && sharesUDN(cur, gw)
}

// withTwins gives a newly read description the twins of the one it
// replaces, so that their announcements are still the router's.
func withTwins(gw, cur *Gateway) *Gateway {
	if len(cur.Twins) == 0 {
		return gw
	}
	merged := *gw
	merged.Twins = nil
	for _, u := range cur.Twins {
		if !sameURL(u, gw.URL) && !slices.ContainsFunc(merged.Twins, func(t string) bool { return sameURL(t, u) }) {
			merged.Twins = append(merged.Twins, u)
		}
	}
	merged.Services = make([]*Service, len(gw.Services))
	for i, svc := range gw.Services {
		copied := *svc
		if was := cur.service(svc.Type); was != nil && was.Type == svc.Type {
			copied.Twins = slices.Clone(was.Twins)
		}
		merged.Services[i] = &copied
	}
	merged.udns = slices.Clone(gw.udns)
	for _, u := range cur.udns {
		if !slices.Contains(merged.udns, u) {
			merged.udns = append(merged.udns, u)
		}
	}
	return &merged
}

// replace takes a newly read description: services still offered keep
// their watch and subscribe again, new ones start, gone ones stop.
func (g *gatewayWatch) replace(ctx context.Context, wg *sync.WaitGroup, gw *Gateway) {
	g.mu.Lock()
	old := g.gw
	g.setGatewayLocked(gw)
	var again []*serviceWatch
	offered := map[string]bool{}
	for _, svc := range gw.Services {
		offered[svc.Type] = true
		if sw := g.services[svc.Type]; sw != nil {
			sw.setService(gw, svc)
			again = append(again, sw)
		} else {
			g.log.Info("router offers a new connection service", "service", svc.ShortType())
			g.addServiceLocked(ctx, wg, gw, svc, ReasonRouterRestart)
		}
	}
	for typ, sw := range g.services {
		if !offered[typ] {
			g.log.Warn("router no longer offers a connection service; no longer watched", "service", typ)
			sw.cancel()
			delete(g.services, typ)
			g.w.unregister(sw)
		}
	}
	g.mu.Unlock()
	if !sameURL(old.URL, gw.URL) {
		g.log.Info("router's description moved; it is the same router, with its shares", "new_url", gw.URL, "router_id", gw.ID)
	}
	for _, sw := range again {
		poke(sw.resub)
	}
}
