package approvals

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// A service is what one device opens for one inside port, whatever
// protocol, outside port, description or origin it uses: Transmission's TCP
// and UDP 51413, Syncthing's UPnP and NAT-PMP shares to 22000. Doorman asks
// one question per service, and a device that opens more services than a
// person can answer gets one question about the whole device.

// BusyLimit is when a device counts as unusually active: more than Shares
// new shares within Window.
type BusyLimit struct {
	Shares int
	Window time.Duration
}

// DefaultBusyLimit is more than 5 new shares within a minute: a game
// console or a torrent client opens two to four at start.
var DefaultBusyLimit = BusyLimit{Shares: 5, Window: time.Minute}

// BusyOff turns busy devices off: every share gets its own question.
var BusyOff = BusyLimit{Shares: -1}

// On reports whether the limit is set.
func (b BusyLimit) On() bool { return b.Shares > 0 && b.Window > 0 }

func (b BusyLimit) String() string {
	if !b.On() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", b.Shares, strings.TrimSuffix(strings.TrimSuffix(b.Window.String(), "0s"), "0m"))
}

// ParseBusyLimit reads a busy-device limit: "5/1m" (more than 5 new shares
// within a minute), or "off".
func ParseBusyLimit(s string) (BusyLimit, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		return BusyOff, nil
	}
	n, w, ok := strings.Cut(s, "/")
	shares, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || shares < 1 || shares > 1000 {
		return BusyLimit{}, fmt.Errorf("%q is not shares/time (for example 5/1m: more than 5 new shares within a minute), or off", s)
	}
	window, err := time.ParseDuration(strings.TrimSpace(w))
	if err != nil || window < time.Second || window > 24*time.Hour {
		return BusyLimit{}, fmt.Errorf("%q: the time is not a duration from 1s to 24h (for example 1m)", s)
	}
	return BusyLimit{Shares: shares, Window: window}, nil
}

// deviceKey names the device behind an address for grouping questions and
// counting its shares: the address. A device keeps its address for the
// minutes this takes, while its MAC may become known halfway (doorman
// learns it from the neighbour table after the first share); rules, which
// last, follow the MAC (storage.Rule.Covers).
func deviceKey(ip string) string { return ip }

// sameDevice reports whether two addresses are one device: the same
// address, or the same MAC where doorman knows both.
func (e *Engine) sameDevice(a, b string) bool {
	if a == b {
		return true
	}
	ma, mb := e.mac(a), e.mac(b)
	return ma != "" && ma == mb
}

// serviceKey names the service of a mapping on the device dev.
func serviceKey(dev string, m watcher.Mapping) string {
	return fmt.Sprintf("%s/%d", dev, m.InternalPort)
}

// ruleRank orders the rules that cover a share: a block always wins over a
// trust, and a rule for the service over one for the whole device.
func ruleRank(r storage.Rule) int {
	n := 0
	if r.Kind == storage.RuleBlock {
		n += 2
	}
	if r.Scope != storage.ScopeDevice {
		n++
	}
	return n
}

// AppNamer names the app behind a mapping from its description or port,
// "" when nothing tells (cmd/doorman passes identify's table). A guess
// from the protocol alone names no app.
type AppNamer func(watcher.Mapping) string

// ruleFor returns the index of the rule in rules that covers m on a device
// with the given MAC ("" if unknown). A trust of a port does not cover a
// share that app names as another app than the share the owner allowed:
// the device runs something new on that port, and the owner is asked
// again.
func ruleFor(rules []storage.Rule, m watcher.Mapping, mac string, app AppNamer) (int, bool) {
	svc := storage.ServiceOf(m)
	best := -1
	for i, r := range rules {
		if !r.Covers(svc, mac) {
			continue
		}
		if r.Kind == storage.RuleTrust && r.Scope == storage.ScopePort && otherApp(app, r.Example, m) {
			continue
		}
		if best < 0 || ruleRank(r) > ruleRank(rules[best]) {
			best = i
		}
	}
	return best, best >= 0
}

// otherApp reports whether app names an app for both mappings and the
// names differ.
func otherApp(app AppNamer, a, b watcher.Mapping) bool {
	if app == nil {
		return false
	}
	x, y := app(a), app(b)
	return x != "" && y != "" && x != y
}

// recentWithin returns the times of ts within window before now.
func recentWithin(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	var out []time.Time
	for _, t := range ts {
		if now.Sub(t) < window {
			out = append(out, t)
		}
	}
	return out
}

// grouper assigns the questions of one transition to messages: a share
// joins its service's pending question, shares of one service in one
// listing share a message, and a busy device's shares all go to one
// message about the device.
type grouper struct {
	t *transitioner
	// pendingService and pendingBusy are the messages still asking, by
	// service and by device: the ID of the alert that owns the message.
	pendingService map[string]uint64
	pendingBusy    map[string]uint64
}

// group fills in Join, With and Busy of the transition's questions.
func (t *transitioner) group() {
	g := grouper{t: t, pendingService: map[string]uint64{}, pendingBusy: map[string]uint64{}}
	for _, a := range t.alerts {
		if a.State != storage.AlertPending || a.Kind == storage.AlertExisting {
			continue
		}
		owner, ok := t.alerts[a.Message()]
		if !ok || owner.State != storage.AlertPending {
			continue
		}
		dev := deviceKey(a.Share.Mapping.InternalClient)
		if owner.Busy {
			g.pendingBusy[dev] = owner.ID
		} else {
			g.pendingService[serviceKey(dev, a.Share.Mapping)] = owner.ID
		}
	}
	ask := t.out.Ask
	devs := make([]string, len(ask))
	count := map[string]int{}
	for i, q := range ask {
		devs[i] = deviceKey(q.Share.Mapping.InternalClient)
		// New shares count; a share another device took over does not
		// make this one busy (and the limit on changes holds it).
		n := count[devs[i]]
		if q.Kind != storage.AlertChanged {
			n++
		}
		count[devs[i]] = n
	}
	t.out.Recent = map[string][]time.Time{}
	busy := map[string]bool{}
	for dev, n := range count {
		recent := recentWithin(t.in.Recent[dev], t.in.Now, t.in.Busy.Window)
		for range n {
			recent = append(recent, t.in.Now)
		}
		t.out.Recent[dev] = recent
		_, asking := g.pendingBusy[dev]
		busy[dev] = asking || (t.in.Busy.On() && len(recent) > t.in.Busy.Shares)
	}
	if len(busy) > 0 {
		g.fold(busy)
	}
	busyLead := map[string]int{}
	serviceLead := map[string]int{}
	for i := range ask {
		q := &ask[i]
		q.With = -1
		dev := devs[i]
		svc := serviceKey(dev, q.Share.Mapping)
		switch lead, ok := busyLead[dev]; {
		case !busy[dev]:
		case g.pendingBusy[dev] != 0:
			q.Join = g.pendingBusy[dev]
			continue
		case ok:
			q.With = lead
			continue
		default:
			q.Busy = true
			busyLead[dev] = i
			continue
		}
		if id := g.pendingService[svc]; id != 0 {
			q.Join = id
		} else if lead, ok := serviceLead[svc]; ok {
			q.With = lead
		} else {
			serviceLead[svc] = i
		}
	}
	t.limitChanges(serviceLead)
}

// limitChanges keeps changes from sending more than one new message per
// service and NoticeInterval: a share that flips between devices or ports
// would otherwise send one per flip. A change that would lead a new
// message about a service that had one from a change within the interval
// is stored unasked and asked about once the interval is over.
func (t *transitioner) limitChanges(serviceLead map[string]int) {
	drop := map[int]bool{}
	for svc, i := range serviceLead {
		q := t.out.Ask[i]
		if q.Kind != storage.AlertChanged || q.Busy {
			continue
		}
		if at, ok := t.in.Asked[svc]; ok && t.in.Now.Sub(at) < t.in.NoticeInterval {
			drop[i] = true
			continue
		}
		if t.out.Asked == nil {
			t.out.Asked = map[string]time.Time{}
		}
		t.out.Asked[svc] = t.in.Now
	}
	if len(drop) == 0 {
		for _, q := range t.out.Ask {
			if key := storage.ShareKey(q.Share.Mapping.Key()); t.in.Deferred[key] {
				t.out.Undeferred = append(t.out.Undeferred, key)
			}
		}
		return
	}
	// The shares that would join a dropped message are left unasked too.
	var kept []question
	index := map[int]int{}
	for i, q := range t.out.Ask {
		lead := i
		if q.With >= 0 {
			lead = q.With
		}
		key := storage.ShareKey(q.Share.Mapping.Key())
		if drop[lead] {
			q.Share.AlertID = 0
			t.out.Put = append(t.out.Put, q.Share)
			if !t.in.Deferred[key] {
				t.out.Deferred = append(t.out.Deferred, key)
			}
			continue
		}
		if q.With >= 0 {
			q.With = index[q.With]
		}
		index[i] = len(kept)
		kept = append(kept, q)
		if t.in.Deferred[key] {
			t.out.Undeferred = append(t.out.Undeferred, key)
		}
	}
	t.out.Ask = kept
}

// fold closes the pending service questions of the devices that became
// busy: one message about the device asks instead.
func (g grouper) fold(busy map[string]bool) {
	t := g.t
	owners := map[uint64]bool{}
	for svc, id := range g.pendingService {
		if busy[svc[:strings.LastIndexByte(svc, '/')]] {
			owners[id] = true
			delete(g.pendingService, svc)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(t.alerts)) {
		if owners[t.alerts[id].Message()] {
			t.supersede(id, storage.NoteBusyDevice)
		}
	}
}
