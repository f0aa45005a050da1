package watcher

// One connection service's watch: its listing loop, how often it polls, and
// how requests for a listing are folded and ranked.

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"
)

// serviceWatch watches one connection service: a lister goroutine that
// lists when asked or when a poll is due, and a manager goroutine that keeps
// the event subscription.
type serviceWatch struct {
	g      *gatewayWatch
	typ    string
	path   string // callback path, unguessable
	log    *slog.Logger
	cancel context.CancelFunc
	// dirty asks the lister for a listing; pending says why. Its one slot
	// folds a burst of events into one listing, plus one more when they
	// come during a listing.
	dirty chan struct{}
	// wake makes the lister look at its poll interval again.
	wake chan struct{}
	// resub makes the manager drop its subscription and subscribe anew,
	// then list (router restart).
	resub chan struct{}
	// check makes the manager renew now, to see whether the router still
	// knows the subscription.
	check chan struct{}
	// initial tells the manager that the subscription's first event came
	// and was answered, so the listing that follows a subscription may
	// start.
	initial chan struct{}

	// mu guards the fields below.
	mu       sync.Mutex
	gw       *Gateway
	svc      *Service
	pending  string
	sid      string
	eventURL string
	granted  time.Duration
	// callback is the IP:PORT of the subscription's callback.
	callback    string
	subscribing bool
	// awaitInitial is set from SUBSCRIBE until the listing that follows
	// it is asked for; an event meanwhile is covered by that listing.
	awaitInitial bool
	seq          uint32
	seqKnown     bool
	// eventSeen is set when a NOTIFY of the current subscription arrived:
	// a router can accept a subscription whose events never reach
	// doorman (a firewall on doorman's machine), and then only polling
	// finds new shares.
	eventSeen bool
	events    bool
	eventsErr string
	lastList  time.Time
	lastErr   string
}

func (sw *serviceWatch) setService(gw *Gateway, svc *Service) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.gw, sw.svc = gw, svc
}

func (sw *serviceWatch) status() ServiceStatus {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return ServiceStatus{
		Router:      sw.gw.ID,
		URL:         sw.gw.URL,
		Service:     sw.typ,
		Events:      sw.events,
		EventsError: sw.eventsErr,
		LastList:    sw.lastList,
		LastError:   sw.lastErr,
	}
}

func reasonRank(r string) int {
	switch r {
	case ReasonStart:
		return 5
	case ReasonRouterRestart:
		return 4
	case ReasonRefresh:
		return 3
	case ReasonEvent:
		return 2
	case ReasonPoll:
		return 1
	}
	return 0
}

// signal asks for a listing; it never blocks.
func (sw *serviceWatch) signal(reason string) {
	sw.mu.Lock()
	if reasonRank(reason) > reasonRank(sw.pending) {
		sw.pending = reason
	}
	sw.mu.Unlock()
	poke(sw.dirty)
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// setEvents records whether events work, and logs when that changes.
func (sw *serviceWatch) setEvents(ok bool, why string) {
	if ok {
		why = ""
	}
	sw.mu.Lock()
	was, wasWhy, sid := sw.events, sw.eventsErr, sw.sid
	sw.events, sw.eventsErr = ok, why
	sw.mu.Unlock()
	if ok == was && why == wasWhy {
		return
	}
	poke(sw.wake)
	cfg := sw.g.w.cfg
	switch {
	case ok:
		sw.log.Info("receiving router events", "sid", sid, "safety_poll", cfg.SafetyPollInterval)
	case cfg.DisableEvents:
		sw.log.Info("router events turned off; polling", "every", cfg.PollInterval)
	default:
		sw.log.Warn("router events unavailable; polling", "why", why, "every", cfg.PollInterval)
	}
}

// eventsLost marks events down if they were up: a service that polls
// already keeps the reason it polls for.
func (sw *serviceWatch) eventsLost(why string) {
	sw.mu.Lock()
	up := sw.events
	sw.mu.Unlock()
	if up {
		sw.setEvents(false, why)
	}
}

func (sw *serviceWatch) pollInterval() time.Duration {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.events {
		return sw.g.w.cfg.SafetyPollInterval
	}
	return sw.g.w.cfg.PollInterval
}

// listLoop lists whenever asked, and when a poll is due, until ctx is done.
func (sw *serviceWatch) listLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var last time.Time
	for {
		if !last.IsZero() {
			timer.Reset(time.Until(last.Add(sw.pollInterval())))
		}
		reason := ReasonPoll
		select {
		case <-ctx.Done():
			return
		case <-sw.wake:
			timer.Stop()
			continue
		case <-sw.dirty:
			sw.mu.Lock()
			reason, sw.pending = cmp.Or(sw.pending, ReasonPoll), ""
			sw.mu.Unlock()
		case <-timer.C:
		}
		timer.Stop()
		sw.list(ctx, reason)
		last = time.Now()
	}
}

func (sw *serviceWatch) list(ctx context.Context, reason string) {
	sw.mu.Lock()
	gw, svc := sw.gw, sw.svc
	sw.mu.Unlock()
	start := time.Now()
	ms, err := sw.g.w.c.listService(ctx, gw, svc)
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	sw.mu.Lock()
	wasErr := sw.lastErr
	if err == nil {
		sw.lastList, sw.lastErr = now, ""
	} else {
		sw.lastErr = err.Error()
	}
	sw.mu.Unlock()
	switch {
	case err != nil && wasErr == "":
		sw.log.Warn("listing port mappings failed", "reason", reason, "err", err)
	case err == nil && wasErr != "":
		sw.log.Info("listing port mappings works again")
	}
	sw.log.Debug("listed port mappings", "reason", reason, "mappings", len(ms), "complete", err == nil, "took", now.Sub(start))
	if cb := sw.g.w.cfg.OnSnapshot; cb != nil {
		cb(ctx, Snapshot{
			Gateway:  gw,
			Service:  svc,
			Mappings: ms,
			Complete: err == nil,
			Err:      err,
			Reason:   reason,
			Time:     now,
		})
	}
}
