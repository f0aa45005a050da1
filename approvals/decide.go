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
	e.mu.Lock()
	defer e.mu.Unlock()
	var a storage.Alert
	err := e.db.View(func(tx *storage.Tx) (err error) {
		a, err = tx.Alert(alertID)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return a, ErrUnknownAlert
	}
	if err != nil {
		return a, fmt.Errorf("approvals: unable to read alert %d: %w", alertID, err)
	}
	if a.State != storage.AlertPending {
		return a, ErrDecided
	}
	m := a.Share.Mapping
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
	now := e.now()
	err = e.db.Update(func(tx *storage.Tx) error {
		cur, err := tx.Alert(alertID)
		if err != nil {
			return err
		}
		if cur.State != storage.AlertPending {
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

func (e *Engine) markGone(tx *storage.Tx, m watcher.Mapping, now time.Time) error {
	s, ok, err := tx.Share(storage.ShareKey(m.Key()))
	if err != nil || !ok || s.Gone() {
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
	alerts, err := tx.Alerts()
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
		o.State, o.DecidedBy, o.DecidedAt = decided.State, decided.DecidedBy, decided.DecidedAt
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
