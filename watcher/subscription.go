package watcher

// The GENA subscription of one service (UPnP Device Architecture 1.1, 4.1):
// SUBSCRIBE, renew, UNSUBSCRIBE, the wait for the router's initial event, and
// the NOTIFYs the callback server hands over.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
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
		sw.pollOnly(ctx, first)
		return
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
			if reason, lost = sw.subscribed(ctx, reason); ctx.Err() != nil {
				sw.unsubscribe(ctx)
				return
			}
			continue
		}
		sw.subscribeFailed(err, lost)
		lost = false
		if reason != "" {
			sw.signal(reason)
		}
		wait := retry
		retry = min(retry*2, max(subscribeRetryMax, cfg.PollInterval))
		if errors.Is(err, errNoEventURL) {
			wait = 0 // never: only a new description can bring one
		}
		var ok bool
		if reason, ok = sw.waitToSubscribe(ctx, wait); !ok {
			return
		}
	}
}

// pollOnly stands in for manage when events are off or cannot reach
// doorman: the router's restarts still call for a listing.
func (sw *serviceWatch) pollOnly(ctx context.Context, first string) {
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

// subscribed follows a SUBSCRIBE the router accepted: it has the service
// listed (for reason, else as a poll) and keeps the subscription until it
// ends. It returns what keep does.
func (sw *serviceWatch) subscribed(ctx context.Context, reason string) (next string, lost bool) {
	// Events count as working once the first one arrives (the router
	// sends one at once), not when the router says yes.
	if sw.sawEvent() {
		sw.setEvents(true, "")
	}
	// The listing waits for the initial event to be answered: miniupnpd
	// sends no event for a change made while a NOTIFY of its waits for
	// its answer (upnp_event_var_change_notify skips a subscriber whose
	// notify is in flight), so a listing that ended before the answer
	// could miss a port opened in between for good. The lab's router
	// restart test caught this on a loaded machine. A router whose events
	// do not come costs this wait once per subscription.
	if !sw.waitInitial(ctx) {
		return "", false
	}
	sw.signal(cmp.Or(reason, ReasonPoll))
	return sw.keep(ctx)
}

// subscribeFailed marks events down after a refused or failed SUBSCRIBE;
// lost says that it followed a failed renewal.
func (sw *serviceWatch) subscribeFailed(err error, lost bool) {
	why := err.Error()
	if lost {
		why = "renewing the subscription failed, and so did subscribing anew: " + why
		// The router's next alive is taken as a restart.
		sw.g.subscriptionsLost()
	}
	sw.setEvents(false, why)
}

// waitToSubscribe waits wait (forever for 0) before the next SUBSCRIBE, or
// less when the router restarted or may have; reason is then that of the
// listing that follows the subscription. It returns false when ctx is done.
func (sw *serviceWatch) waitToSubscribe(ctx context.Context, wait time.Duration) (reason string, ok bool) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return "", false
	case <-timeout:
	case <-sw.resub:
		return ReasonRouterRestart, true
	case <-sw.check:
	}
	return "", true
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
				sw.setEvents(false, fmt.Sprintf("the router accepted the subscription, but none of its events reached doorman within %s (does a firewall on this machine block the router from reaching %s?)", sw.g.w.firstEventWait, sw.callbackAddr()))
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

// callbackAddr returns the IP:PORT the router sends the subscription's
// events to.
func (sw *serviceWatch) callbackAddr() string {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.callback
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
	sw.callback = strings.TrimPrefix(base, "http://")
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
