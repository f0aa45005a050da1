package approvals

import (
	"errors"
	"fmt"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

// A new question waits Config.Gather before it goes to the outbox: the
// shares an app opens in one go (TCP and UDP, UPnP and NAT-PMP) arrive in a
// few listings, and a busy device's first shares come before doorman can
// tell it is busy. Held, they join one message, and a question folded into
// a busy device's is never sent. The hold lives in memory; sendUnsent
// sends at start what a stop cut short.

// A held question waits Gather, and then while its device still opens new
// shares: on a loaded machine, or a router slow to answer, a burst reaches
// doorman over several listings and seconds, and a question sent at the
// first second would go out before the device is seen to be busy. It waits
// at most maxHoldFactor times Gather, so that a device opening shares
// without pause still gets its questions asked; another device's questions
// never wait for it.
const maxHoldFactor = 5

// heldAlert is a question held back by storeTransition, and the device whose
// new shares keep it held.
type heldAlert struct {
	alert  uint64
	device string
}

type heldQuestion struct {
	since  time.Time
	device string
}

// dueLocked reports whether a held question goes out now, and how long to
// wait for it otherwise. e.mu must be held.
func (e *Engine) dueLocked(h heldQuestion, now time.Time) (bool, time.Duration) {
	wait := e.gather - now.Sub(h.since)
	if limit := time.Duration(maxHoldFactor) * e.gather; now.Sub(h.since) >= limit {
		return true, 0
	}
	if ts := e.recent[h.device]; len(ts) > 0 {
		// The device is still busy opening shares: wait until it has
		// been quiet for half a gather time. (recent is what the busy
		// check counts; with that check off, nothing extends the hold.)
		wait = max(wait, e.gather/2-now.Sub(ts[len(ts)-1]))
	}
	return wait <= 0, wait
}

// wakeHeldLocked makes sendHeld run in d, unless it runs sooner already:
// one timer, however many listings hold questions. e.mu must be held.
func (e *Engine) wakeHeldLocked(d time.Duration) {
	at := time.Now().Add(d)
	if e.heldTimer != nil {
		if !e.heldAt.After(at) {
			return
		}
		e.heldTimer.Stop()
	}
	e.heldAt, e.heldTimer = at, time.AfterFunc(d, e.sendHeld)
}

// sendHeld queues the held questions whose time has come, and looks again
// when the next one is due.
func (e *Engine) sendHeld() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.heldTimer = nil
	now := e.now()
	var due []uint64
	var next time.Duration
	for id, h := range e.held {
		ok, wait := e.dueLocked(h, now)
		switch {
		case ok:
			due = append(due, id)
		case next == 0 || wait < next:
			next = wait
		}
	}
	if next > 0 {
		e.wakeHeldLocked(next)
	}
	if len(due) == 0 {
		return
	}
	err := e.sendHeldUpdate(func(tx *storage.Tx) error {
		for _, id := range due {
			if err := e.sendQuestion(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Tried again: nothing else would send them before the next
		// new question, or the next start.
		e.logger.Error("unable to send the questions held back; will retry", "questions", len(due), "err", err, "retry_in", e.gather)
		e.wakeHeldLocked(e.gather)
		return
	}
	for _, id := range due {
		delete(e.held, id)
	}
	e.wake()
}

// sendQuestion queues the message of alert id, if it still asks and owns a
// message that was never sent.
func (e *Engine) sendQuestion(tx *storage.Tx, id uint64) error {
	a, err := tx.Alert(id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil || a.State != storage.AlertPending || a.Message() != a.ID || a.MessageID != 0 {
		return err
	}
	return tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxAlert, AlertID: a.ID, ChatID: a.ChatID, CreatedAt: e.now()})
}

// sendUnsent queues the questions that were held when doorman stopped: the
// pending ones that own a message never sent and have no outbox item.
func (e *Engine) sendUnsent() error {
	err := e.db.Update(func(tx *storage.Tx) error {
		items, err := tx.Outbox()
		if err != nil {
			return err
		}
		queued := map[uint64]bool{}
		for _, it := range items {
			queued[it.AlertID] = true
		}
		alerts, err := tx.PendingAlerts()
		if err != nil {
			return err
		}
		for _, a := range alerts {
			if a.Kind != storage.AlertExisting && a.ChatID != 0 && !queued[a.ID] {
				if err := e.sendQuestion(tx, a.ID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("approvals: unable to send the questions held when doorman stopped: %w", err)
	}
	return nil
}
