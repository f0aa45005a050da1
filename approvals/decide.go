package approvals

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// Decision is the owner's answer to an alert.
type Decision string

const (
	Allow Decision = "allow"
	// AllowDevice trusts everything the share's device opens.
	AllowDevice Decision = "allow-device"
	Block       Decision = "block"
	// BlockDevice closes everything the share's device opens, now and
	// whenever it opens more.
	BlockDevice Decision = "block-device"
)

var (
	// ErrDecided means the alert was answered before (or superseded); the
	// returned alert says how.
	ErrDecided = errors.New("this share was already decided")
	// ErrUnknownAlert means the alert does not exist (any more).
	ErrUnknownAlert = errors.New("unknown alert")
	// ErrInProgress means another press about the same share is still
	// being carried out; this one was dropped.
	ErrInProgress = errors.New("a decision about this share is under way")
)

// RefusedError is a Block the router would not carry out.
type RefusedError struct {
	Key watcher.Key
	Err error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the router refused to close %s: %v", e.Key, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// closeNote says why a share was not closed, for bot to explain: a router
// that refuses is set up to let each device manage only its own shares,
// which is a setting, not a fault.
func closeNote(err error) storage.Note {
	if errors.Is(err, watcher.ErrDeleteRefused) {
		return storage.Note{Kind: storage.NoteRefused, UPnPCode: watcher.UPnPErrorCode(err)}
	}
	return storage.Note{Kind: storage.NoteUnreachable, Error: shortError(err)}
}

// Decide applies the owner's answer to an alert, and to every share of its
// message: a service's shares, or a busy device's. A Block deletes the
// shares on the router first and is recorded only when they are really
// gone; when the router refuses, the alert stays open with the reason as
// its note and the error is a *RefusedError. BlockDevice closes every
// share of the device.
func (e *Engine) Decide(ctx context.Context, alertID uint64, d Decision, by storage.User) (storage.Alert, error) {
	a, err := e.Alert(ctx, alertID)
	if err != nil {
		return a, err
	}
	if a.State != storage.AlertPending {
		return a, ErrDecided
	}
	if a.Busy {
		// A busy device's message asks about the device only.
		switch d {
		case Allow, AllowDevice:
			d = AllowDevice
		default:
			d = BlockDevice
		}
	}
	m := a.Share.Mapping
	var targets []watcher.Mapping
	if err := e.db.View(func(tx *storage.Tx) (err error) { targets, err = e.blockTargets(tx, a, d); return err }); err != nil {
		return a, fmt.Errorf("approvals: unable to read the shares of alert %d: %w", alertID, err)
	}
	// The router is asked without the engine's lock, so that a slow
	// router holds up neither listings nor other presses; a second press
	// about the shares meanwhile is dropped, and the write below checks
	// again what a listing may have changed.
	keys := []string{fmt.Sprintf("alert %d", a.Message())}
	for _, t := range targets {
		keys = append(keys, storage.ShareKey(t.Key()))
	}
	release, ok := e.claim(keys...)
	if !ok {
		return a, ErrInProgress
	}
	defer release()
	var blockErr error
	var closed []watcher.Mapping
	for _, t := range targets {
		err := e.router.DeleteListedMapping(ctx, t)
		if errors.Is(err, watcher.ErrMappingChanged) {
			// Another device's share took the port: nothing was deleted,
			// and the listing it triggers asks about that share.
			e.logger.Info("not closing a share that leads elsewhere now", "router", t.Router, "share", t.Key().String(), "err", err)
			continue
		}
		if err != nil {
			e.logger.Warn("block failed", "router", t.Router, "share", t.Key().String(), "client", t.InternalClient, "err", err)
			if blockErr == nil {
				blockErr = err
			}
			continue
		}
		closed = append(closed, t)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	err = e.db.Update(func(tx *storage.Tx) error {
		cur, err := tx.Alert(alertID)
		if err != nil {
			return err
		}
		for _, t := range closed {
			if err := e.markGone(tx, t, now); err != nil {
				return err
			}
		}
		if cur.State != storage.AlertPending {
			// A listing superseded the question while the router was
			// at work, or another press answered it.
			a = cur
			return ErrDecided
		}
		a = cur
		switch {
		case blockErr != nil:
			a.Note = closeNote(blockErr)
		default:
			a.State, a.Note = storage.AlertAllowed, storage.Note{}
			kind, scope := storage.RuleTrust, storage.ScopePort
			switch d {
			case Block:
				a.State, kind = storage.AlertBlocked, storage.RuleBlock
			case BlockDevice:
				a.State, kind, scope = storage.AlertBlocked, storage.RuleBlock, storage.ScopeDevice
				a.Note = storage.Note{Kind: storage.NoteBlockedDevice}
			case AllowDevice:
				scope = storage.ScopeDevice
				a.Note = storage.Note{Kind: storage.NoteTrustedDevice}
			}
			a.DecidedBy, a.DecidedAt = by, now
			if err := e.putRule(tx, kind, scope, m, by, now); err != nil {
				return err
			}
		}
		if a.State == storage.AlertPending && a.Kind == storage.AlertExisting && a.Batch != 0 && !a.Note.IsZero() {
			// A batch message holds up to BatchSize shares, with no room
			// for a full explanation on each line.
			if a.Note, err = e.explainApart(tx, storage.NoticeNotClosed, a.ChatID, m, a.Note); err != nil {
				return err
			}
		}
		if a.State != storage.AlertPending {
			if err := e.decideSiblings(tx, a, d == AllowDevice || d == BlockDevice); err != nil {
				return err
			}
		}
		if err := tx.PutAlert(&a); err != nil {
			return err
		}
		return e.enqueueEdit(tx, a)
	})
	if errors.Is(err, ErrDecided) {
		if len(closed) > 0 {
			e.logger.Info("closed shares whose question was answered meanwhile", "router", m.Router, "shares", len(closed), "alert", alertID, "state", string(a.State))
		}
		return a, ErrDecided
	}
	if err != nil {
		return a, fmt.Errorf("approvals: unable to record the decision on alert %d: %w", alertID, err)
	}
	e.wake()
	if blockErr != nil {
		if errors.Is(blockErr, watcher.ErrDeleteRefused) {
			return a, &RefusedError{Key: m.Key(), Err: blockErr}
		}
		return a, fmt.Errorf("approvals: unable to close %s: %w", m.Key(), blockErr)
	}
	e.logger.Info("decision", "decision", string(d), "router", m.Router, "share", m.Key().String(), "client", m.InternalClient, "closed", len(closed), "by", by.ID)
	return a, nil
}

// blockTargets returns the open shares a decision d on alert a closes: none
// for a trust; for a Block, the shares of a's message that the router still
// lists as they were asked about (another device's share that took a port
// since stays); for BlockDevice, every open share of the device.
func (e *Engine) blockTargets(tx *storage.Tx, a storage.Alert, d Decision) ([]watcher.Mapping, error) {
	var out []watcher.Mapping
	switch d {
	case BlockDevice:
		shares, err := tx.Shares("")
		if err != nil {
			return nil, err
		}
		for _, s := range shares {
			if !s.Gone() && e.sameDevice(s.Mapping.InternalClient, a.Share.Mapping.InternalClient) {
				out = append(out, s.Mapping)
			}
		}
	case Block:
		alerts := []storage.Alert{a}
		if a.Kind != storage.AlertExisting {
			// The message's, also when a is not its owner: an owner
			// whose share went to another device no longer asks, and
			// the message's buttons then answer for a share it still
			// asks about (bot's renderMessage).
			switch all, err := tx.MessageAlerts(a.Message()); {
			case errors.Is(err, storage.ErrNotFound):
			case err != nil:
				return nil, err
			default:
				alerts = all
			}
		}
		for _, o := range alerts {
			if o.State != storage.AlertPending {
				continue
			}
			open, err := stillOpen(tx, o.Share.Mapping)
			if err != nil {
				return nil, err
			}
			if open {
				out = append(out, o.Share.Mapping)
			}
		}
	}
	return out, nil
}

// claim marks a share as being decided or closed, so that two presses
// about it never reach the router at once; ok is false when it is claimed
// already. release ends the claim.
func (e *Engine) claim(keys ...string) (release func(), ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range keys {
		if e.busy[k] {
			return nil, false
		}
	}
	for _, k := range keys {
		e.busy[k] = true
	}
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, k := range keys {
			delete(e.busy, k)
		}
	}, true
}

// putRule makes the rule for the mapping's service (or device) kind,
// replacing a rule of the other kind for the same: the latest decision
// counts. The device's MAC goes in, so the rule follows it to another
// address.
func (e *Engine) putRule(tx *storage.Tx, kind storage.RuleKind, scope storage.RuleScope, m watcher.Mapping, by storage.User, now time.Time) error {
	svc := storage.ServiceOf(m)
	mac := e.mac(m.InternalClient)
	rules, err := tx.Rules()
	if err != nil {
		return err
	}
	for _, r := range rules {
		// A rule of the other kind for the same goes, including one made
		// before ports for this service.
		same := r.Covers(svc, mac) && (r.Scope == scope || (scope == storage.ScopePort && r.Scope == storage.ScopeService)) &&
			!(r.Kind == storage.RuleTrust && r.Scope == storage.ScopePort && otherApp(e.appName, r.Example, m))
		if !same {
			continue
		}
		if r.Kind == kind && r.Scope == scope {
			return nil
		}
		if r.Kind == kind {
			continue
		}
		if err := tx.DeleteRule(r.ID); err != nil {
			return err
		}
	}
	return tx.PutRule(&storage.Rule{Kind: kind, Scope: scope, Service: svc, MAC: mac, Example: m, CreatedAt: now, CreatedBy: by, LastMatched: now})
}

// markGone records that the share m is gone; another device's share that
// took the port since is left as it is.
func (e *Engine) markGone(tx *storage.Tx, m watcher.Mapping, now time.Time) error {
	s, ok, err := tx.Share(storage.ShareKey(m.Key()))
	if err != nil || !ok || s.Gone() || !SameService(s.Mapping, m) {
		return err
	}
	s.GoneAt = now
	return tx.PutShare(s)
}

// ForgetRule deletes a rule; the service is asked about again the next time
// it opens a share.
func (e *Engine) ForgetRule(ctx context.Context, id uint64) (storage.Rule, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var r storage.Rule
	err := e.db.Update(func(tx *storage.Tx) (err error) {
		if r, err = tx.Rule(id); err != nil {
			return err
		}
		return tx.DeleteRule(id)
	})
	if err != nil {
		return r, fmt.Errorf("approvals: unable to forget rule %d: %w", id, err)
	}
	e.logger.Info("rule forgotten", "rule", id, "kind", string(r.Kind), "client", r.Service.InternalClient)
	return r, nil
}

func shortError(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// decideSiblings answers the other open questions about the same service the
// same way: the rule just made covers them too.
func (e *Engine) decideSiblings(tx *storage.Tx, decided storage.Alert, wholeDevice bool) error {
	dm := decided.Share.Mapping
	// The open questions only: the cost of an answer does not grow with
	// the history.
	alerts, err := tx.PendingAlerts()
	if err != nil {
		return err
	}
	for _, o := range alerts {
		if o.ID == decided.ID || o.State != storage.AlertPending {
			continue
		}
		om := o.Share.Mapping
		if !e.sameDevice(om.InternalClient, dm.InternalClient) || (!wholeDevice && om.InternalPort != dm.InternalPort) {
			continue
		}
		// A note the sibling had (a Block the router refused) is about
		// the question, which is answered now.
		o.State, o.DecidedBy, o.DecidedAt, o.Note = decided.State, decided.DecidedBy, decided.DecidedAt, storage.Note{}
		if err := tx.PutAlert(&o); err != nil {
			return err
		}
		if o.Message() != decided.Message() {
			if err := e.enqueueEdit(tx, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// explainApart queues why a share was not closed as a notice of its own and
// returns the note that stands in the crowded message (a batch, a digest
// page) instead.
func (e *Engine) explainApart(tx *storage.Tx, kind storage.NoticeKind, chatID int64, m watcher.Mapping, note storage.Note) (storage.Note, error) {
	n := &storage.Notice{Kind: kind, Mapping: m, Note: note}
	if err := tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxNotice, ChatID: chatID, CreatedAt: e.now(), Notice: n}); err != nil {
		return storage.Note{}, err
	}
	return storage.Note{Kind: storage.NoteSeeBelow}, nil
}
