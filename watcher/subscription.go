package watcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"
)

const (
	// A refused subscription is tried again after PollInterval, doubling
	// up to this.
	subscribeRetryMax = 10 * time.Minute
	// unsubscribeTimeout bounds the UNSUBSCRIBE sent on the way out.
	unsubscribeTimeout = 2 * time.Second
)

// holdsSID reports whether a NOTIFY with sid belongs to this service. While
// a SUBSCRIBE is in flight its SID is not known yet, and the router's
// initial event may come first.
func (sw *serviceWatch) holdsSID(sid string) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.subscribing || (sid != "" && sid == sw.sid)
}

// event takes a NOTIFY the callback server accepted.
func (sw *serviceWatch) event(sid string, seq uint32, seqOK bool, vars map[string]string) {
	sw.mu.Lock()
	known := sid != "" && sid == sw.sid
	gap := false
	if known && seqOK {
		switch {
		case !sw.seqKnown || seq == 0:
			sw.seq, sw.seqKnown = seq, true
		case seqBefore(seq, sw.seq):
			// Overtaken by a later one; it still asks for a listing.
		default:
			gap = seq != nextSEQ(sw.seq)
			sw.seq = seq
		}
	}
	confirm := !sw.eventSeen && !sw.events
	sw.eventSeen = true
	covered := sw.awaitInitial
	sw.awaitInitial = false
	sw.mu.Unlock()
	if confirm {
		sw.setEvents(true, "")
	}
	attrs := []any{"sid", sid, "seq", seq}
	if n, ok := vars["PortMappingNumberOfEntries"]; ok {
		attrs = append(attrs, "entries", n)
	}
	sw.log.Debug("router event", attrs...)
	if gap {
		sw.log.Debug("router events were lost (SEQ gap); listing anyway")
	}
	if covered {
		poke(sw.initial)
		return
	}
	sw.signal(ReasonEvent)
}

// manage keeps the event subscription: subscribe, renew at half time,
// subscribe anew when a renewal fails or the router restarted, fall back to
// polling (and retry with backoff) when subscribing fails. Every
// subscription is followed by a listing, so that nothing that changed while
// doorman was not subscribed is missed. first is the reason of the first
// listing.
func (sw *serviceWatch) manage(ctx context.Context, first string) {
	cfg := sw.g.w.cfg
	if cfg.DisableEvents || sw.g.noEvents != "" {
		sw.setEvents(false, cmp.Or(sw.g.noEvents, "turned off"))
		sw.signal(first)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sw.resub:
				sw.signal(ReasonRouterRestart)
			case <-sw.check:
			}
		}
	}
	reason := first
	retry := cfg.PollInterval
	lost := false
	for {
		sw.mu.Lock()
		sw.eventSeen = false
		sw.mu.Unlock()
		err := sw.subscribe(ctx)
		if ctx.Err() != nil {
			sw.unsubscribe(ctx)
			return
		}
		if err == nil {
			retry = cfg.PollInterval
			lost = false
			// Events count as working once the first one arrives (the
			// router sends one at once), not when the router says yes.
			if sw.sawEvent() {
				sw.setEvents(true, "")
			}
			// The listing waits for the initial event to be answered:
			// miniupnpd sends no event for a change made while a NOTIFY
			// of its waits for its answer (upnp_event_var_change_notify
			// skips a subscriber whose notify is in flight), so a listing
			// that ended before the answer could miss a port opened in
			// between for good. The lab's router restart test caught
			// this on a loaded machine. A router whose events do not
			// come costs this wait once per subscription.
			if !sw.waitInitial(ctx) {
				sw.unsubscribe(ctx)
				return
			}
			sw.signal(cmp.Or(reason, ReasonPoll))
			reason, lost = sw.keep(ctx)
			if ctx.Err() != nil {
				sw.unsubscribe(ctx)
				return
			}
			continue
		}
		why := err.Error()
		if lost {
			why = "renewing the subscription failed, and so did subscribing anew: " + why
			// The router's next alive is taken as a restart.
			sw.g.mu.Lock()
			sw.g.restarts.subscriptionsLost()
			sw.g.mu.Unlock()
			lost = false
		}
		sw.setEvents(false, why)
		if reason != "" {
			sw.signal(reason)
			reason = ""
		}
		wait := retry
		retry = min(retry*2, max(subscribeRetryMax, cfg.PollInterval))
		if errors.Is(err, errNoEventURL) {
			wait = 0 // never: only a new description can bring one
		}
		var timeout <-chan time.Time
		t := time.NewTimer(wait)
		if wait > 0 {
			timeout = t.C
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-timeout:
		case <-sw.resub:
			reason = ReasonRouterRestart
		case <-sw.check:
		}
		t.Stop()
	}
}

// keep renews the subscription until it fails, the router restarts or ctx
// is done. It returns the reason of the listing that follows the next
// subscription, and lost when a renewal failed.
func (sw *serviceWatch) keep(ctx context.Context) (reason string, lost bool) {
	timer := time.NewTimer(renewDelay(sw.grantedTimeout()))
	defer timer.Stop()
	firstEvent := time.NewTimer(sw.g.w.firstEventWait)
	defer firstEvent.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", false
		case <-firstEvent.C:
			if !sw.sawEvent() {
				sw.setEvents(false, fmt.Sprintf("the router accepted the subscription, but none of its events reached doorman within %s (does a firewall on this machine block the router from reaching DOORMAN_CALLBACK_ADDR?)", sw.g.w.firstEventWait))
			}
			continue
		case <-sw.resub:
			sw.drop(ctx)
			return ReasonRouterRestart, false
		case <-sw.check:
			if err := sw.renew(ctx); err != nil {
				if ctx.Err() != nil {
					return "", false
				}
				sw.log.Info("router no longer knows the event subscription: it restarted", "err", err)
				sw.forget()
				return ReasonRouterRestart, false
			}
		case <-timer.C:
			if err := sw.renew(ctx); err != nil {
				if ctx.Err() != nil {
					return "", false
				}
				sw.log.Warn("renewing the event subscription failed; subscribing anew", "err", err)
				sw.forget()
				return ReasonPoll, true
			}
		}
		timer.Reset(renewDelay(sw.grantedTimeout()))
		if sw.sawEvent() {
			sw.setEvents(true, "")
		}
	}
}

// defaultFirstEventWait is how long the router's initial event may take
// before doorman stops counting on events; UPnP routers send it at once.
const defaultFirstEventWait = 10 * time.Second

// initialEventWait bounds how long the listing after a subscription waits
// for the router's initial event.
const initialEventWait = 250 * time.Millisecond

// waitInitial waits until the subscription's first event was answered, or
// initialEventWait. It returns false when ctx is done.
func (sw *serviceWatch) waitInitial(ctx context.Context) bool {
	t := time.NewTimer(initialEventWait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-sw.initial:
	case <-t.C:
	}
	sw.mu.Lock()
	sw.awaitInitial = false
	sw.mu.Unlock()
	return true
}

func (sw *serviceWatch) sawEvent() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.eventSeen
}

func (sw *serviceWatch) grantedTimeout() time.Duration {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.granted
}

func (sw *serviceWatch) subscribe(ctx context.Context) (err error) {
	sw.mu.Lock()
	svc := sw.svc
	sw.subscribing = true
	sw.awaitInitial = true
	sw.mu.Unlock()
	// A poke left by an earlier subscription says nothing of this one.
	select {
	case <-sw.initial:
	default:
	}
	defer func() {
		sw.mu.Lock()
		sw.subscribing = false
		if err != nil {
			sw.awaitInitial = false
		}
		sw.mu.Unlock()
	}()
	if svc.EventSubURL == "" {
		return errNoEventURL
	}
	base, err := sw.g.w.callbackBase(sw.g.local)
	if err != nil {
		return err
	}
	sub, err := sw.g.w.c.subscribe(ctx, svc.EventSubURL, base+sw.path, sw.g.w.cfg.SubscriptionTimeout)
	if err != nil {
		return err
	}
	sw.mu.Lock()
	sw.sid, sw.eventURL, sw.granted = sub.sid, svc.EventSubURL, sub.timeout
	sw.seqKnown = false
	sw.subscribing = false
	sw.mu.Unlock()
	sw.log.Debug("subscribed to router events", "sid", sub.sid, "timeout", sub.timeout, "callback", base+sw.path)
	return nil
}

func (sw *serviceWatch) renew(ctx context.Context) error {
	sw.mu.Lock()
	eventURL, sid := sw.eventURL, sw.sid
	sw.mu.Unlock()
	granted, err := sw.g.w.c.renew(ctx, eventURL, sid, sw.g.w.cfg.SubscriptionTimeout)
	if err != nil {
		return err
	}
	sw.mu.Lock()
	sw.granted = granted
	sw.mu.Unlock()
	sw.log.Debug("renewed the event subscription", "sid", sid, "timeout", granted)
	return nil
}

// forget drops the subscription without telling the router, which no
// longer knows it.
func (sw *serviceWatch) forget() (eventURL, sid string) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	eventURL, sid = sw.eventURL, sw.sid
	sw.sid, sw.seqKnown = "", false
	return eventURL, sid
}

// drop ends the subscription, telling the router if it still listens.
func (sw *serviceWatch) drop(ctx context.Context) {
	eventURL, sid := sw.forget()
	if sid == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, min(unsubscribeTimeout, sw.g.w.c.requestTimeout))
	defer cancel()
	if err := sw.g.w.c.unsubscribe(ctx, eventURL, sid); err != nil {
		sw.log.Debug("UNSUBSCRIBE failed (the router may have forgotten the subscription)", "sid", sid, "err", err)
	}
}

// unsubscribe ends the subscription on the way out, briefly: doorman is
// stopping and ctx is done.
func (sw *serviceWatch) unsubscribe(ctx context.Context) {
	sw.drop(context.WithoutCancel(ctx))
}
