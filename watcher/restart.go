package watcher

// Restart detection: a restarted router has forgotten every event
// subscription, and its mappings may have changed while it was down. The
// detector below reads the router's SSDP announcements (ssdp_notify.go) and
// says what they mean; gatewayWatch.onSSDP acts on that. It is a pure state
// machine: no sockets, no goroutines, and the time comes in with each
// message, so restart_test.go can play any sequence of announcements.

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

const (
	// checkInterval limits how often announcements without a usable
	// BOOTID make doorman renew its subscriptions to see whether the
	// router still knows them.
	checkInterval = 10 * time.Second
	// byebyeGrace: miniupnpd 2.3.1 stopped within a second of its start
	// sends its byebye burst and then, within a millisecond, the second
	// alive burst it had scheduled 250 ms after the start, with the old
	// BOOTID (seen in the lab). Such an alive is not the router coming back.
	byebyeGrace = time.Second
	// relistInterval is the least time between two restarts taken from
	// announcements: each reads the description, subscribes anew and lists
	// every service. SSDP is UDP, and any LAN device can send an
	// announcement with the router's address as its source; alternating
	// forged byebyes and alives made doorman list over 150 times in 2 s
	// before this limit (TestWatchForgedAnnouncementStorm). A restart that
	// comes sooner is deferred to the end of the interval, and any number
	// of them are one.
	relistInterval = 30 * time.Second
)

// restartKind is what an announcement asks of the gateway's watch.
type restartKind int

const (
	// announcementIgnored: nothing to do (a periodic alive, another
	// device, the rest of a burst).
	announcementIgnored restartKind = iota
	// routerLeaving: the router said ssdp:byebye; its events stop until
	// it is back.
	routerLeaving
	// routerRestarted: read the description again, subscribe anew and
	// list.
	routerRestarted
	// checkSubscriptions: the announcement cannot tell; renew the
	// subscriptions now, and a router that has forgotten them has
	// restarted.
	checkSubscriptions
	// restartDeferred: a restart came within relistInterval of the last;
	// call deferredDue at restartAction.at.
	restartDeferred
)

// restartAction is what observe makes of one announcement.
type restartAction struct {
	kind restartKind
	// why says, for routerRestarted and restartDeferred, what showed the
	// restart.
	why string
	// at is when a deferred restart is due, for restartDeferred.
	at time.Time
}

// restartDetector tells router restarts from the router's announcements.
//
// A restart is an ssdp:alive after an ssdp:byebye or after the
// subscriptions were lost, one with a BOOTID other than the last, or one
// that moves the description to another URL on the same host. An alive
// without a BOOTID, or the first one seen, cannot tell: it asks for
// checkSubscriptions, at most once per checkInterval.
//
// Restarts are at most one per relistInterval (see restartDeferred).
//
// It has no lock of its own: gatewayWatch.mu guards it.
type restartDetector struct {
	// url and udns are the router's root description URL and the UDNs
	// it holds, from the description last read (setGateway); urls are
	// url and its twins' (identity.go), normalised.
	url  string
	urls []string
	udns []string
	// bootID is the last BOOTID.UPNP.ORG the router announced.
	bootID string
	// lost: the router said byebye, or its subscriptions were lost; its
	// next ssdp:alive is taken as a restart.
	lost bool
	// byebye is set from an ssdp:byebye until the router is back;
	// byebyeAt and byebyeBoot are when it came and the BOOTID it had.
	byebye     bool
	byebyeAt   time.Time
	byebyeBoot string
	// lastCheck is when observe last asked for checkSubscriptions.
	lastCheck time.Time
	// why is what showed the last restart; nextURL is where an alive
	// moved the description to, until restartLocation takes it.
	why     string
	nextURL string
	// lastRestart is when observe or deferredDue last said
	// routerRestarted; deferred is set while a restartDeferred waits.
	lastRestart time.Time
	deferred    bool
}

// setGateway takes a newly read description of the router.
func (d *restartDetector) setGateway(gw *Gateway) {
	d.url, d.udns = gw.URL, gw.udns
	d.urls = nil
	for _, u := range append([]string{gw.URL}, gw.Twins...) {
		if n, err := normalizeURL(u); err == nil {
			d.urls = append(d.urls, n)
		}
	}
}

// subscriptionsLost makes the router's next ssdp:alive count as a restart:
// renewing and subscribing anew failed, or the description could not be
// read after a restart.
func (d *restartDetector) subscriptionsLost() {
	d.lost = true
}

// restartLocation returns what showed the last restart and the description
// URL to read now: the one an alive moved it to, else the last one read.
func (d *restartDetector) restartLocation() (why, descURL string) {
	why, descURL = d.why, cmp.Or(d.nextURL, d.url)
	d.nextURL = ""
	return why, descURL
}

// observe takes an announcement that came from the router's address at now.
func (d *restartDetector) observe(m ssdpMessage, now time.Time) restartAction {
	switch m.NTS {
	case "ssdp:byebye":
		return d.observeByebye(m, now)
	case "ssdp:update":
		if d.owns(m) && m.NextBootID != "" {
			d.bootID = m.NextBootID
		}
	case "ssdp:alive":
		return d.observeAlive(m, now)
	}
	return restartAction{}
}

// owns reports whether m is about one of the router's own devices.
func (d *restartDetector) owns(m ssdpMessage) bool {
	return slices.Contains(d.udns, m.uuid())
}

func (d *restartDetector) observeByebye(m ssdpMessage, now time.Time) restartAction {
	// A byebye comes in a burst, one per device and service type: the
	// first one counts.
	if !d.owns(m) || d.byebye {
		return restartAction{}
	}
	d.byebye, d.lost = true, true
	d.byebyeAt, d.byebyeBoot = now, m.BootID
	return restartAction{kind: routerLeaving}
}

func (d *restartDetector) observeAlive(m ssdpMessage, now time.Time) restartAction {
	owned := d.owns(m)
	loc := sameHostURL(m.Location, d.url)
	known := slices.Contains(d.urls, loc)
	// Another device on the router's address (a FRITZ!Box's media
	// server) has its own UUID and description. Some routers make up a
	// new UUID at every boot: an alive with the description's URL is the
	// router's all the same.
	if !owned && !known {
		return restartAction{}
	}
	// Only a URL spelled differently after normalisation is a move, and
	// gatewayWatch.restartLoop believes it only once it found the same
	// device there.
	moved := owned && loc != "" && !known
	var why string
	var check bool
	if d.byebye {
		why, check = d.judgeReturn(m, now)
	} else {
		why, check = d.judgeAlive(m, moved, loc, now)
	}
	if m.BootID != "" {
		d.bootID = m.BootID
	}
	if moved {
		d.nextURL = loc
	}
	switch {
	case why != "":
		d.lost, d.byebye, d.why = false, false, why
		return d.restart(why, now)
	case check:
		d.lastCheck = now
		return restartAction{kind: checkSubscriptions}
	}
	return restartAction{}
}

// restart says routerRestarted, or restartDeferred when the last restart
// was less than relistInterval ago; nothing while one is deferred already.
func (d *restartDetector) restart(why string, now time.Time) restartAction {
	if !d.lastRestart.IsZero() && now.Sub(d.lastRestart) < relistInterval {
		if d.deferred {
			return restartAction{}
		}
		d.deferred = true
		return restartAction{kind: restartDeferred, why: why, at: d.lastRestart.Add(relistInterval)}
	}
	d.lastRestart = now
	return restartAction{kind: routerRestarted, why: why}
}

// deferredDue is called when a deferred restart is due: it says
// routerRestarted, for the last reason seen, or nothing if none waits.
func (d *restartDetector) deferredDue(now time.Time) restartAction {
	if !d.deferred {
		return restartAction{}
	}
	d.deferred = false
	d.lastRestart = now
	return restartAction{kind: routerRestarted, why: d.why}
}

// judgeReturn reads an alive that follows a byebye.
func (d *restartDetector) judgeReturn(m ssdpMessage, now time.Time) (why string, check bool) {
	switch {
	case m.BootID == d.byebyeBoot && now.Sub(d.byebyeAt) < byebyeGrace:
		// The dying router's last burst; see byebyeGrace.
		return "", false
	case m.BootID != "" && m.BootID == d.byebyeBoot:
		// Back without a new BOOTID, which UDA 1.1 forbids: ask
		// whether it still knows the subscriptions.
		return "", d.checkDue(now)
	}
	return "the router is back after ssdp:byebye", false
}

// judgeAlive reads an alive while the router is up, as far as doorman
// knows.
func (d *restartDetector) judgeAlive(m ssdpMessage, moved bool, loc string, now time.Time) (why string, check bool) {
	switch {
	case d.lost:
		return "the router announces itself after its event subscriptions were lost", false
	case m.BootID != "" && d.bootID != "" && m.BootID != d.bootID:
		return fmt.Sprintf("BOOTID.UPNP.ORG changed from %s to %s", d.bootID, m.BootID), false
	case moved:
		return "the router moved its description to " + loc, false
	case m.BootID == "" || d.bootID == "":
		// A UDA 1.0 router sends no BOOTID, and the first alive seen has
		// nothing to compare with.
		return "", d.checkDue(now)
	}
	// The periodic alive (miniupnpd's notify_interval) or the repeat of a
	// burst: same BOOTID, nothing new.
	return "", false
}

func (d *restartDetector) checkDue(now time.Time) bool {
	return now.Sub(d.lastCheck) >= checkInterval
}

// sameHostURL returns loc, normalised (normalizeURL), if it is an http URL
// on the host of ref, else "". Announcements cannot move doorman to another
// host: see pinHost.
func sameHostURL(loc, ref string) string {
	if loc == "" {
		return ""
	}
	n, err := normalizeURL(loc)
	if err != nil || gatewayHost(n) != gatewayHost(ref) {
		return ""
	}
	return n
}
