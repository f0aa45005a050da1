package approvals

import (
	"maps"
	"slices"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// transitionInput is all that the decision about one listing depends on:
// what doorman stored of the service, the listing, the rules and the chat.
type transitionInput struct {
	Listing Listing
	// Stored is what doorman stored of the listing's service, in key
	// order, and Alerts the alerts those shares name, by ID.
	Stored []storage.Share
	Alerts map[uint64]storage.Alert
	Rules  []storage.Rule
	// Router is what doorman remembers of the service; Known is false
	// when it was never listed completely, so that what is open now was
	// open before doorman watched it and is asked about in batches.
	Router storage.Router
	Known  bool
	// First is true for the first listing of the service since doorman
	// started: observers hear of what is open as open, not new.
	First bool
	// Chat is the owner chat, 0 when none is paired: nobody is asked.
	Chat int64
	// MAC returns the MAC known for an address, "" if none.
	MAC func(ip string) string
	// AppName names the app of a share, for trusts of a port.
	AppName AppNamer
	// Refused holds when a block rule last failed to close a share, by
	// share key; the transition only reads it.
	Refused map[string]time.Time
	// Pending are the alerts still asking, of any router: a share joins
	// its service's question, or its busy device's.
	Pending []storage.Alert
	// Recent holds when each device (by address) last opened new shares,
	// within Busy's window, and Busy says when a device is busy.
	Recent map[string][]time.Time
	Busy   BusyLimit
	// Asked holds when a change last made a new message about a service
	// (serviceKey), and Deferred the shares whose change the limit of one
	// such message per NoticeInterval left unasked, by share key.
	Asked          map[string]time.Time
	Deferred       map[string]bool
	Now            time.Time
	KeepGone       time.Duration
	NoticeInterval time.Duration
}

// question is a share to ask about in a message of its own.
type question struct {
	Kind     storage.AlertKind
	Share    storage.Share
	Previous *watcher.Mapping
	// Join is the alert owning the pending message the share joins, 0
	// for none; With is the index in Ask of the question whose new
	// message it joins, -1 for none. A question with neither owns a new
	// message, about the whole device when Busy.
	Join uint64
	With int
	Busy bool
}

// transitionOutput is what a listing changes. The transaction around the
// transition stores it as it is.
type transitionOutput struct {
	// Put are shares to store as they are; Ask and AskBatch are shares to
	// store with a new question, one message each or a few per message.
	Put      []storage.Share
	Ask      []question
	AskBatch []storage.Share
	// Delete are the keys of gone shares to forget.
	Delete []string
	// Superseded are alerts whose question no longer applies, as they
	// are to be stored; their messages are edited.
	Superseded []storage.Alert
	// Updated are pending alerts whose share changed, as they are to be
	// stored; their messages are edited.
	Updated []storage.Alert
	// Rules are the rules that matched, as they are to be stored.
	Rules []storage.Rule
	// Recent is Input.Recent of the devices that opened shares now.
	Recent map[string][]time.Time
	// Asked are the services (serviceKey) a change made a new message
	// about now; Deferred the share keys a change left unasked, because
	// the service had a message from a change within NoticeInterval, and
	// Undeferred those asked about (or covered) since.
	Asked      map[string]time.Time
	Deferred   []string
	Undeferred []string
	// Held are the new messages held back (Config.Gather), filled in
	// when the questions are stored.
	Held []heldAlert
	// Router is the service's record to store, nil for none.
	Router  *storage.Router
	Enforce []enforcement
	Events  []Event
	// Changes counts what changed; its Alerts are filled in when the
	// questions are stored.
	Changes Changes
}

// transition decides what a listing changes. It is pure: the caller loads
// its input and stores its output in one transaction.
func transition(in transitionInput) transitionOutput {
	t := &transitioner{in: in, rules: slices.Clone(in.Rules), alerts: maps.Clone(in.Alerts), matched: map[int]bool{}}
	if t.alerts == nil {
		t.alerts = map[uint64]storage.Alert{}
	}
	for _, a := range in.Pending {
		if _, ok := t.alerts[a.ID]; !ok {
			t.alerts[a.ID] = a
		}
	}
	before := make(map[string]storage.Share, len(in.Stored))
	for _, s := range in.Stored {
		before[storage.ShareKey(s.Mapping.Key())] = s
	}
	seen := make(map[string]bool, len(in.Listing.Mappings))
	for _, m := range in.Listing.Mappings {
		key := storage.ShareKey(m.Key())
		if seen[key] {
			continue
		}
		seen[key] = true
		old, had := before[key]
		t.listed(m, old, had)
	}
	for _, old := range in.Stored {
		if key := storage.ShareKey(old.Mapping.Key()); !seen[key] {
			t.missing(key, old)
		}
	}
	t.group()
	for i := range t.rules {
		if t.matched[i] {
			t.out.Rules = append(t.out.Rules, t.rules[i])
		}
	}
	// Only a complete first listing makes the router known: after a
	// partial one, the rest must still come as one report, not as a
	// burst of single alerts.
	switch {
	case in.Known:
		r := in.Router
		r.LastList = in.Now
		t.out.Router = &r
	case in.Listing.Complete:
		t.out.Router = &storage.Router{ID: in.Listing.Router, Service: in.Listing.Service, FirstSeen: in.Now, LastList: in.Now}
	}
	return t.out
}

// transitioner holds one transition's working state.
type transitioner struct {
	in      transitionInput
	out     transitionOutput
	rules   []storage.Rule
	matched map[int]bool
	// alerts is in.Alerts as this transition changed them.
	alerts map[uint64]storage.Alert
}

// listed decides about a share the listing shows; old is what was stored
// under its key, if had.
func (t *transitioner) listed(m watcher.Mapping, old storage.Share, had bool) {
	now := t.in.Now
	share := storage.Share{Mapping: m, FirstSeen: now, LastSeen: now}
	switch {
	case had && !old.Gone() && SameService(old.Mapping, m):
		// Unchanged.
		share.FirstSeen, share.AlertID, share.SnoozedUntil = old.FirstSeen, old.AlertID, old.SnoozedUntil
		rule := t.applyRules(share)
		if t.in.First {
			t.emit(EventOpen, m, nil, rule)
		}
		if key := storage.ShareKey(m.Key()); t.in.Deferred[key] && rule == "" && share.AlertID == 0 && t.in.Chat != 0 {
			// A change the limit left unasked: asked now, if the limit
			// lets it (group).
			t.out.Ask = append(t.out.Ask, question{Kind: storage.AlertChanged, Share: share})
			return
		}
		t.out.Put = append(t.out.Put, share)
		return
	case had && old.Gone() && SameService(old.Mapping, m) && t.pending(old.AlertID):
		// Asked about before and back now (a router restart or a device
		// renewing late): the question stands, no new one.
		share.AlertID, share.SnoozedUntil = old.AlertID, old.SnoozedUntil
		// Back after a short absence (a router restart): the share has
		// been open all along, as far as the owner is concerned.
		if now.Sub(old.GoneAt) < 24*time.Hour {
			share.FirstSeen = old.FirstSeen
		}
		t.out.Changes.Returned++
		t.emit(EventNew, m, nil, t.applyRules(share))
		t.out.Put = append(t.out.Put, share)
		return
	}
	rule := t.applyRules(share)
	if had && rule == "" && t.sameDevicePort(old.Mapping, m) && t.pending(old.AlertID) {
		// A flip of description or origin of a share still asked about,
		// in place or by closing and reopening it: its question shows
		// the share as it is now, no new message.
		prev := old.Mapping
		a := t.alerts[old.AlertID]
		a.Share, a.Previous = share, &prev
		a.Share.FirstSeen, a.Share.AlertID = old.FirstSeen, old.AlertID
		t.alerts[a.ID] = a
		t.out.Updated = append(t.out.Updated, a)
		if old.Gone() {
			t.out.Changes.Returned++
		} else {
			t.out.Changes.Changed++
		}
		t.emit(EventChanged, m, &prev, "")
		t.out.Put = append(t.out.Put, a.Share)
		return
	}
	var previous *watcher.Mapping
	if had && !old.Gone() {
		t.out.Changes.Changed++
		prev := old.Mapping
		previous = &prev
		t.supersede(old.AlertID, storage.NoteChanged)
	} else {
		t.out.Changes.New++
		if had && !SameService(old.Mapping, m) {
			// Another device or app has the port now; the old question's
			// Block would close the wrong share.
			t.supersede(old.AlertID, storage.NoteReopenedByOther)
		}
	}
	if previous != nil {
		t.emit(EventChanged, m, previous, rule)
	} else {
		t.emit(EventNew, m, nil, rule)
	}
	switch {
	case rule != "" || t.in.Chat == 0:
		t.out.Put = append(t.out.Put, share)
	case !t.in.Known && previous == nil:
		t.out.AskBatch = append(t.out.AskBatch, share)
	case previous != nil:
		t.out.Ask = append(t.out.Ask, question{Kind: storage.AlertChanged, Share: share, Previous: previous})
	default:
		t.out.Ask = append(t.out.Ask, question{Kind: storage.AlertNew, Share: share})
	}
}

// sameDevicePort reports whether two mappings are of one service: the same
// device and inside port.
func (t *transitioner) sameDevicePort(a, b watcher.Mapping) bool {
	return a.InternalPort == b.InternalPort && deviceKey(a.InternalClient) == deviceKey(b.InternalClient)
}

// missing decides about a stored share the listing does not show.
func (t *transitioner) missing(key string, old storage.Share) {
	now := t.in.Now
	switch {
	case !old.Gone() && t.in.Listing.Complete:
		old.GoneAt = now
		t.out.Changes.Gone++
		t.emit(EventGone, old.Mapping, nil, "")
		t.out.Put = append(t.out.Put, old)
	case old.Gone() && now.Sub(old.GoneAt) > t.in.KeepGone:
		t.out.Delete = append(t.out.Delete, key)
	}
}

func (t *transitioner) emit(kind EventKind, m watcher.Mapping, prev *watcher.Mapping, rule storage.RuleKind) {
	if t.in.First && (kind == EventNew || kind == EventChanged) {
		kind = EventOpen
	}
	t.out.Events = append(t.out.Events, Event{Kind: kind, Mapping: m, Previous: prev, Time: t.in.Now, Rule: rule})
}

// pending reports whether an alert still waits for an answer; a share that
// comes back after its question was answered and its rule forgotten is
// asked about again.
func (t *transitioner) pending(id uint64) bool {
	a, ok := t.alerts[id]
	return id != 0 && ok && a.State == storage.AlertPending
}

// supersede closes the question of an alert that no longer applies.
func (t *transitioner) supersede(id uint64, why storage.NoteKind) {
	if !t.pending(id) {
		return
	}
	a := t.alerts[id]
	a.State, a.Note = storage.AlertSuperseded, storage.Note{Kind: why}
	t.alerts[id] = a
	t.out.Superseded = append(t.out.Superseded, a)
}

// applyRules applies the rule that covers the share's service, if any: a
// block rule schedules a delete, a trust rule only notes the match. It
// returns the kind of rule that covered the share ("" for none); nobody is
// asked about a covered share.
func (t *transitioner) applyRules(share storage.Share) storage.RuleKind {
	mac := ""
	if t.in.MAC != nil {
		mac = t.in.MAC(share.Mapping.InternalClient)
	}
	i, ok := ruleFor(t.rules, share.Mapping, mac, t.in.AppName)
	if !ok {
		return ""
	}
	r := &t.rules[i]
	r.LastMatched = t.in.Now
	t.matched[i] = true
	if r.Kind == storage.RuleBlock {
		// A router that refused to close this share will refuse again;
		// retrying on every listing would hammer it and the log.
		if at, ok := t.in.Refused[storage.ShareKey(share.Mapping.Key())]; !ok || t.in.Now.Sub(at) >= t.in.NoticeInterval {
			r.Matches++
			t.out.Enforce = append(t.out.Enforce, enforcement{rule: *r, share: share})
		}
	}
	return r.Kind
}
