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

// Decide applies the owner's answer to an alert. A Block deletes the share on
// the router first and is recorded only when the share is really gone; when
// the router refuses, the alert stays open with the reason as its note and
// the error is a *RefusedError.
func (e *Engine) Decide(ctx context.Context, alertID uint64, d Decision, by storage.User) (storage.Alert, error) {
	a, err := e.Alert(ctx, alertID)
	if err != nil {
		return a, err
	}
	if a.State != storage.AlertPending {
		return a, ErrDecided
	}
	m := a.Share.Mapping
	// The router is asked without the engine's lock, so that a slow
	// router holds up neither listings nor other presses; a second press
	// about the share meanwhile is dropped, and the write below checks
	// again what a listing may have changed.
	release, ok := e.claim(storage.ShareKey(m.Key()))
	if !ok {
		return a, ErrInProgress
	}
	defer release()
	var open bool
	if err := e.db.View(func(tx *storage.Tx) (err error) { open, err = stillOpen(tx, m); return err }); err != nil {
		return a, fmt.Errorf("approvals: unable to read the share of alert %d: %w", alertID, err)
	}
	var blockErr error
	if d == Block && open {
		blockErr = e.router.DeleteMapping(ctx, m.Key())
		if blockErr != nil {
			e.logger.Warn("block failed", "router", m.Router, "share", m.Key().String(), "client", m.InternalClient, "err", blockErr)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	err = e.db.Update(func(tx *storage.Tx) error {
		cur, err := tx.Alert(alertID)
		if err != nil {
			return err
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
			kind, scope := storage.RuleTrust, storage.ScopeService
			switch d {
			case Block:
				a.State, kind = storage.AlertBlocked, storage.RuleBlock
			case AllowDevice:
				scope = storage.ScopeDevice
				a.Note = storage.Note{Kind: storage.NoteTrustedDevice}
			}
			a.DecidedBy, a.DecidedAt = by, now
			if err := e.putRule(tx, kind, scope, m, by, now); err != nil {
				return err
			}
			if d == Block && open {
				if err := e.markGone(tx, m, now); err != nil {
					return err
				}
			}
		}
		if a.State == storage.AlertPending && a.Batch != 0 && !a.Note.IsZero() {
			// A batch message holds up to BatchSize shares, with no room
			// for a full explanation on each line.
			if a.Note, err = e.explainApart(tx, storage.NoticeNotClosed, a.ChatID, m, a.Note); err != nil {
				return err
			}
		}
		if a.State != storage.AlertPending {
			if err := e.decideSiblings(tx, a, d == AllowDevice); err != nil {
				return err
			}
		}
		if err := tx.PutAlert(&a); err != nil {
			return err
		}
		return e.enqueueEdit(tx, a)
	})
	if errors.Is(err, ErrDecided) {
		if d == Block && open && blockErr == nil {
			e.logger.Info("closed a share whose question was answered meanwhile", "router", m.Router, "share", m.Key().String(), "alert", alertID, "state", string(a.State))
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
	e.logger.Info("decision", "decision", string(d), "router", m.Router, "share", m.Key().String(), "client", m.InternalClient, "by", by.ID)
	return a, nil
}

// claim marks a share as being decided or closed, so that two presses
// about it never reach the router at once; ok is false when it is claimed
// already. release ends the claim.
func (e *Engine) claim(key string) (release func(), ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.busy[key] {
		return nil, false
	}
	e.busy[key] = true
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		delete(e.busy, key)
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
		same := r.Scope == scope && r.Covers(svc, mac)
		if !same {
			continue
		}
		if r.Kind == kind {
			return nil
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
	svc := storage.ServiceOf(decided.Share.Mapping)
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
		other := storage.ServiceOf(o.Share.Mapping)
		if other != svc && !(wholeDevice && other.InternalClient == svc.InternalClient) {
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
