// Package approvals decides what happens to each port share: it compares
// every listing with what doorman stored, asks about new and changed shares,
// applies the owner's trust and block rules, and carries out a Block on the
// router.
package approvals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// Router is what approvals needs from the watcher: deleting a share and
// making sure it is gone.
type Router interface {
	// DeleteListedMapping deletes the share m as a listing showed it and
	// verifies it is gone; a router that keeps it returns an error
	// matching watcher.ErrDeleteRefused. When another device (or inside
	// port) holds m's port by now, nothing is deleted, the error matches
	// watcher.ErrMappingChanged and the router is listed again, so that
	// the new share is asked about like any other.
	DeleteListedMapping(ctx context.Context, m watcher.Mapping) error
}

// Defaults for Config.
const (
	// DefaultNoticeInterval limits the "closed again" notices about one
	// block rule: a device that retries every few seconds must not flood
	// the chat.
	DefaultNoticeInterval = 10 * time.Minute
	// DefaultKeepGone is how long a share that disappeared is remembered,
	// so that it is recognised when it comes back.
	DefaultKeepGone = 30 * 24 * time.Hour
	// DefaultGather is how long doorman run holds a new question: a
	// burst of shares takes well under a second, a person does not notice
	// the wait.
	DefaultGather = time.Second
	// BatchSize is how many already-open shares one message asks about.
	BatchSize = 15
)

// Config configures an Engine.
type Config struct {
	DB     *storage.DB
	Router Router
	// ChatID is the chat alerts and notices go to.
	ChatID int64
	// Wake is called after something was put in the outbox.
	Wake           func()
	NoticeInterval time.Duration
	KeepGone       time.Duration
	// KeepHistory is how long decided alerts and digests are kept
	// (default DefaultKeepHistory); see Prune.
	KeepHistory time.Duration
	// StaleAfter is how long a share may be open before the digest lists
	// it (default 14 days).
	StaleAfter time.Duration
	// Presence, when set, lets the digest name devices that left.
	Presence Presence
	// Gather holds a new question this long before it is sent, so that
	// the shares a device opens in one go land in one message, and the
	// first ones of a busy device in the busy device's (0: send at once;
	// run uses DefaultGather).
	Gather time.Duration
	// AppName, when set, names the app behind a share, so that a trust
	// of a port does not pass to another app on it.
	AppName AppNamer
	// BusyDevice is when a device counts as unusually active (default
	// DefaultBusyLimit); BusyOff turns it off.
	BusyDevice BusyLimit
	// DigestPager, when set, splits digests into pages that fit a chat
	// message (bot.DigestPager).
	DigestPager DigestPager
	// MACOf returns the MAC doorman knows for a LAN address without
	// waiting ("" if none), so rules follow devices across DHCP changes.
	MACOf func(ip string) string
	// Observe, when set, is told of every share doorman sees change, for
	// the terminal mode. It is called with the engine's lock held, in
	// order, and must not call back into the engine.
	Observe func(Event)
	Now     func() time.Time
	Logger  *slog.Logger
}

// Engine applies decisions. Its methods are safe for concurrent use; they
// are serialised because each one reads and writes the same shares.
type Engine struct {
	db     *storage.DB
	router Router
	// chat is the owner chat, the one value of it that approvals and bot
	// both read: it changes when the owner pairs or unpairs, and is read
	// without the lock, so that a command need not wait for a listing.
	chat           atomic.Int64
	wake           func()
	noticeInterval time.Duration
	keepGone       time.Duration
	keepHistory    time.Duration
	staleAfter     time.Duration
	presence       Presence
	pager          DigestPager
	observe        func(Event)
	macOf          func(string) string
	busyLimit      BusyLimit
	appName        AppNamer
	gather         time.Duration
	now            func() time.Time
	logger         *slog.Logger
	// sendHeldUpdate writes the held questions to the outbox; tests make
	// it fail.
	sendHeldUpdate func(fn func(tx *storage.Tx) error) error

	mu sync.Mutex
	// listed holds the services listed since this engine started, to
	// tell observers about what is open once, then only about changes.
	listed map[string]bool
	// routerIDs maps a listed router's identity to the one its shares are
	// stored under (adoptRouterLocked).
	routerIDs map[string]string
	// refused holds when a block rule last failed to close a share.
	refused map[string]time.Time
	// busy holds the shares a press is being carried out on, by key.
	busy map[string]bool
	// recent holds when each device (by address) opened new shares, within
	// the busy-device window.
	recent map[string][]time.Time
	// held are new questions not sent yet (Gather), by alert; heldTimer
	// runs sendHeld when the first of them may be due, at heldAt.
	held      map[uint64]heldQuestion
	heldTimer *time.Timer
	heldAt    time.Time
	// asked and deferred are transitionInput's Asked and Deferred.
	asked    map[string]time.Time
	deferred map[string]bool
	// prunedAt is when history was last pruned.
	prunedAt time.Time
}

// EventKind says what happened to a share.
type EventKind string

const (
	EventOpen    EventKind = "open"    // open when doorman started
	EventNew     EventKind = "new"     // opened
	EventChanged EventKind = "changed" // same port, other device, port or description
	EventGone    EventKind = "gone"    // no longer on the router
	EventClosed  EventKind = "closed"  // closed again by a block rule
	EventRefused EventKind = "refused" // a block rule could not close it
)

// Event is a change to a share, for observers.
type Event struct {
	Kind     EventKind
	Mapping  watcher.Mapping
	Previous *watcher.Mapping
	Time     time.Time
	// Rule is the kind of rule that covers the share, "" if none.
	Rule storage.RuleKind
	Err  error
}

// SetChat changes the chat alerts go to; 0 means none (not paired yet):
// shares are then recorded without asking, and ReportUnasked asks about
// them once a chat is set.
func (e *Engine) SetChat(chatID int64) { e.chat.Store(chatID) }

// Chat returns the chat alerts go to, 0 if none.
func (e *Engine) Chat() int64 { return e.chat.Load() }

// New returns an Engine for cfg.
func New(cfg Config) (*Engine, error) {
	if cfg.DB == nil {
		return nil, errors.New("approvals: no database")
	}
	if cfg.Router == nil {
		return nil, errors.New("approvals: no router")
	}
	e := &Engine{
		db:             cfg.DB,
		router:         cfg.Router,
		wake:           cfg.Wake,
		noticeInterval: cfg.NoticeInterval,
		keepGone:       cfg.KeepGone,
		keepHistory:    cfg.KeepHistory,
		staleAfter:     cfg.StaleAfter,
		presence:       cfg.Presence,
		pager:          cfg.DigestPager,
		observe:        cfg.Observe,
		macOf:          cfg.MACOf,
		busyLimit:      cfg.BusyDevice,
		appName:        cfg.AppName,
		gather:         cfg.Gather,
		recent:         map[string][]time.Time{},
		held:           map[uint64]heldQuestion{},
		sendHeldUpdate: cfg.DB.Update,
		asked:          map[string]time.Time{},
		deferred:       map[string]bool{},
		now:            cfg.Now,
		logger:         cfg.Logger,
		listed:         map[string]bool{},
		routerIDs:      map[string]string{},
		refused:        map[string]time.Time{},
		busy:           map[string]bool{},
	}
	e.chat.Store(cfg.ChatID)
	if e.wake == nil {
		e.wake = func() {}
	}
	if e.noticeInterval <= 0 {
		e.noticeInterval = DefaultNoticeInterval
	}
	if e.keepGone <= 0 {
		e.keepGone = DefaultKeepGone
	}
	if e.keepHistory <= 0 {
		e.keepHistory = DefaultKeepHistory
	}
	if e.staleAfter <= 0 {
		e.staleAfter = DefaultStaleAfter
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.busyLimit == (BusyLimit{}) {
		e.busyLimit = DefaultBusyLimit
	}
	if err := e.sendUnsent(); err != nil {
		return nil, err
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// Listing is one complete or partial read of a service's mapping table.
type Listing struct {
	// Router is the router's identity (watcher.Gateway.ID); RouterUDNs
	// are its devices' UDNs, by which it may have been stored before.
	Router     string
	RouterUDNs []string
	Service    string
	// ServiceTwins are the types of the services of twin descriptions
	// that hold the same table (watcher.Service.Twins).
	ServiceTwins []string
	Mappings     []watcher.Mapping
	// Complete is false when the listing broke off: shares missing from
	// it are then not taken as gone.
	Complete bool
	// RouterRestarted tells that shares vanished because the router
	// restarted, not because anybody closed them.
	RouterRestarted bool
}

// Changes sums up what a listing changed, for logs and tests.
type Changes struct {
	New, Changed, Gone, Returned int
	Alerts                       []uint64
	Enforced                     int
}

// SameService reports whether two mappings with the same key are the same
// share; a different client, inside port or description makes it a change.
func SameService(a, b watcher.Mapping) bool {
	return a.InternalClient == b.InternalClient && a.InternalPort == b.InternalPort && a.Description == b.Description
}

// HandleListing compares a listing with the stored shares: it records new,
// changed and gone shares, asks about the ones no rule covers, and deletes
// the ones a block rule covers.
func (e *Engine) HandleListing(ctx context.Context, l Listing) (Changes, error) {
	ch, enforce, err := e.record(l)
	if err != nil {
		return ch, err
	}
	// Deletes go to the router outside the lock, so that a slow router
	// does not hold up a button press.
	ch.Enforced = len(enforce)
	for _, en := range enforce {
		e.enforce(ctx, en)
	}
	e.maybePrune(ctx)
	return ch, nil
}

// record writes what a listing shows and returns the shares to close. The
// decision is transition's; the transaction only loads and stores.
func (e *Engine) record(l Listing) (Changes, []enforcement, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, err := e.adoptRouterLocked(l)
	if err != nil {
		return Changes{}, nil, err
	}
	listed := l.Router + "\x00" + l.Service
	in := transitionInput{
		Listing: l, First: !e.listed[listed], Chat: e.Chat(), MAC: e.mac, Refused: e.refused,
		Now: e.now(), KeepGone: e.keepGone, NoticeInterval: e.noticeInterval,
		Recent: e.recent, Busy: e.busyLimit, AppName: e.appName, Asked: e.asked, Deferred: e.deferred,
	}
	var out transitionOutput
	err = e.db.Update(func(tx *storage.Tx) error {
		if err := loadTransition(tx, &in); err != nil {
			return err
		}
		out = transition(in)
		return e.storeTransition(tx, in, &out)
	})
	ch := out.Changes
	if err != nil {
		return ch, nil, fmt.Errorf("approvals: unable to record the listing of %s: %w", l.Router, err)
	}
	if l.Complete || len(l.Mappings) > 0 {
		e.listed[listed] = true
	}
	for dev, ts := range out.Recent {
		e.recent[dev] = ts
	}
	for _, h := range out.Held {
		e.held[h.alert] = heldQuestion{since: in.Now, device: h.device}
	}
	for svc, at := range out.Asked {
		e.asked[svc] = at
	}
	for svc, at := range e.asked {
		if in.Now.Sub(at) >= e.noticeInterval {
			delete(e.asked, svc)
		}
	}
	for _, key := range out.Deferred {
		e.deferred[key] = true
	}
	for _, key := range out.Undeferred {
		delete(e.deferred, key)
	}
	if len(out.Held) > 0 {
		e.wakeHeldLocked(e.gather)
	}
	for dev, ts := range e.recent {
		if len(recentWithin(ts, in.Now, e.busyLimit.Window)) == 0 {
			delete(e.recent, dev)
		}
	}
	if e.observe != nil {
		// The lock is held; observers must not call back into the
		// engine. The terminal printer only prints.
		for _, ev := range out.Events {
			e.observe(ev)
		}
	}
	if len(ch.Alerts) > 0 || ch.Changed > 0 || len(out.Updated) > 0 || len(out.Superseded) > 0 {
		e.wake()
	}
	if ch.New+ch.Changed+ch.Gone+ch.Returned > 0 {
		e.logger.Info("port shares changed", "router", l.Router, "new", ch.New, "changed", ch.Changed, "gone", ch.Gone, "returned", ch.Returned, "alerts", len(ch.Alerts), "restart", l.RouterRestarted)
	}
	return ch, out.Enforce, nil
}

// loadTransition reads what the transition of in.Listing depends on.
func loadTransition(tx *storage.Tx, in *transitionInput) error {
	l := in.Listing
	var err error
	if in.Router, in.Known, err = tx.Router(l.Router, l.Service); err != nil {
		return err
	}
	stored, err := tx.Shares(l.Router)
	if err != nil {
		return err
	}
	in.Stored, in.Alerts = nil, map[uint64]storage.Alert{}
	for _, s := range stored {
		if s.Mapping.Service != l.Service {
			continue
		}
		in.Stored = append(in.Stored, s)
		if s.AlertID == 0 {
			continue
		}
		a, err := tx.Alert(s.AlertID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return err
		default:
			in.Alerts[a.ID] = a
		}
	}
	if in.Rules, err = tx.Rules(); err != nil {
		return err
	}
	in.Pending, err = tx.PendingAlerts()
	return err
}

// storeTransition writes what a transition decided and fills in the IDs of
// the alerts it asked.
func (e *Engine) storeTransition(tx *storage.Tx, in transitionInput, out *transitionOutput) error {
	// One edit per message, however many of its shares changed.
	edited := map[uint64]bool{}
	edit := func(a storage.Alert) error {
		if edited[a.Message()] {
			return nil
		}
		edited[a.Message()] = true
		return e.enqueueEdit(tx, a)
	}
	for _, a := range append(slices.Clone(out.Superseded), out.Updated...) {
		if err := tx.PutAlert(&a); err != nil {
			return err
		}
		if err := edit(a); err != nil {
			return err
		}
	}
	for _, s := range out.Put {
		if err := tx.PutShare(s); err != nil {
			return err
		}
	}
	out.Changes.Alerts = nil
	ids := make([]uint64, len(out.Ask))
	for i, q := range out.Ask {
		a := &storage.Alert{Kind: q.Kind, Share: q.Share, Previous: q.Previous, State: storage.AlertPending, CreatedAt: in.Now, ChatID: in.Chat, Batch: q.Join, Busy: q.Busy}
		if q.With >= 0 && q.Join == 0 {
			a.Batch = ids[q.With]
		}
		if err := tx.PutAlert(a); err != nil {
			return err
		}
		ids[i] = a.ID
		q.Share.AlertID = a.ID
		if err := tx.PutShare(q.Share); err != nil {
			return err
		}
		out.Changes.Alerts = append(out.Changes.Alerts, a.ID)
		if a.Batch != 0 {
			if err := edit(*a); err != nil {
				return err
			}
			continue
		}
		// The first share of a message owns it; later ones join by its ID.
		a.Batch = a.ID
		if err := tx.PutAlert(a); err != nil {
			return err
		}
		edited[a.ID] = true // rendered when sent, with the shares that join it
		if e.gather > 0 {
			out.Held = append(out.Held, heldAlert{alert: a.ID, device: deviceKey(a.Share.Mapping.InternalClient)})
			continue
		}
		if err := tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxAlert, AlertID: a.ID, ChatID: in.Chat, CreatedAt: in.Now}); err != nil {
			return err
		}
	}
	ids, err := e.askExisting(tx, in.Chat, out.AskBatch, in.Now)
	if err != nil {
		return err
	}
	out.Changes.Alerts = append(out.Changes.Alerts, ids...)
	for _, key := range out.Delete {
		if err := tx.DeleteShare(key); err != nil {
			return err
		}
	}
	for _, r := range out.Rules {
		if err := tx.PutRule(&r); err != nil {
			return err
		}
	}
	if out.Router != nil {
		return tx.PutRouter(*out.Router)
	}
	return nil
}

// askExisting asks about the shares that were open before doorman first
// listed the router, a few per message rather than one message each.
func (e *Engine) askExisting(tx *storage.Tx, chat int64, shares []storage.Share, now time.Time) ([]uint64, error) {
	var ids []uint64
	for start := 0; start < len(shares); start += BatchSize {
		var leader uint64
		for _, share := range shares[start:min(start+BatchSize, len(shares))] {
			a := &storage.Alert{Kind: storage.AlertExisting, Share: share, State: storage.AlertPending, CreatedAt: now, ChatID: chat, Batch: leader}
			if err := tx.PutAlert(a); err != nil {
				return nil, err
			}
			if leader == 0 {
				leader = a.ID
				a.Batch = leader
				if err := tx.PutAlert(a); err != nil {
					return nil, err
				}
			}
			share.AlertID = a.ID
			if err := tx.PutShare(share); err != nil {
				return nil, err
			}
			ids = append(ids, a.ID)
		}
		if err := tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxAlert, AlertID: leader, ChatID: chat, CreatedAt: now}); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func (e *Engine) enqueueEdit(tx *storage.Tx, a storage.Alert) error {
	return tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxEdit, AlertID: a.Message(), ChatID: a.ChatID, CreatedAt: e.now()})
}

// ReportUnasked asks, in the current chat, about the open shares nobody was
// asked about because no chat was paired when they appeared: one message
// per router, a few shares each, like a first start.
func (e *Engine) ReportUnasked(ctx context.Context) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	chat := e.Chat()
	if chat == 0 {
		return 0, errors.New("approvals: no chat to report to")
	}
	now := e.now()
	var n int
	err := e.db.Update(func(tx *storage.Tx) error {
		n = 0
		shares, err := tx.Shares("")
		if err != nil {
			return err
		}
		rules, err := tx.Rules()
		if err != nil {
			return err
		}
		byRouter := map[string][]storage.Share{}
		var routers []string
		for _, s := range shares {
			if s.Gone() {
				continue
			}
			if s.AlertID != 0 {
				// A question still open in a chat that was unpaired is
				// asked again here; answered ones stay answered.
				a, err := tx.Alert(s.AlertID)
				if err != nil || a.State != storage.AlertPending || a.ChatID == chat {
					continue
				}
				a.State, a.Note = storage.AlertSuperseded, storage.Note{Kind: storage.NoteAskedAgain}
				if err := tx.PutAlert(&a); err != nil {
					return err
				}
				s.AlertID = 0
			}
			if _, ok := ruleFor(rules, s.Mapping, e.mac(s.Mapping.InternalClient), e.appName); ok {
				continue
			}
			if _, ok := byRouter[s.Mapping.Router]; !ok {
				routers = append(routers, s.Mapping.Router)
			}
			byRouter[s.Mapping.Router] = append(byRouter[s.Mapping.Router], s)
		}
		for _, r := range routers {
			ids, err := e.askExisting(tx, chat, byRouter[r], now)
			if err != nil {
				return err
			}
			n += len(ids)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("approvals: unable to report the shares found before pairing: %w", err)
	}
	if n > 0 {
		e.wake()
	}
	return n, nil
}

// stillOpen reports whether the router still lists the share as m: a Block
// on an old question must not close another device's share that took the
// same port since.
func stillOpen(tx *storage.Tx, m watcher.Mapping) (bool, error) {
	s, ok, err := tx.Share(storage.ShareKey(m.Key()))
	if err != nil || !ok {
		return false, err
	}
	return !s.Gone() && SameService(s.Mapping, m), nil
}

func (e *Engine) mac(ip string) string {
	if e.macOf == nil {
		return ""
	}
	return e.macOf(ip)
}
