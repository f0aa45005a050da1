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

// sendHeld queues the held questions whose time has come.
func (e *Engine) sendHeld() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	var due []uint64
	for id, at := range e.held {
		if now.Sub(at) >= e.gather {
			due = append(due, id)
		}
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
		time.AfterFunc(e.gather, e.sendHeld)
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
