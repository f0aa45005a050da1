package approvals

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

// Bounded history: alerts and digests would otherwise pile up for as long
// as doorman runs. What is pruned is what nothing reads any more: /list
// reads the alert a share points at, a press the alert or digest of its
// message, the outbox what it still owes the chat, the metrics the totals
// (kept in storage.AlertTotals). Rules keep who decided and when on their
// own.

const (
	// DefaultKeepHistory is how long a decided or superseded alert, and a
	// digest, is kept after it was decided or made, so that the buttons
	// of its message still answer sensibly for as long.
	DefaultKeepHistory = 30 * 24 * time.Hour
	// pruneEvery is how often a listing prunes.
	pruneEvery = time.Hour
	// pruneBatch bounds the deletes of one transaction, so that pruning
	// months of history never holds the database for long, and
	// pruneBatches those of one run; the rest waits for the next.
	pruneBatch   = 500
	pruneBatches = 20
	// keepDigests is how many of the newest digests are kept whatever
	// their age: a weekly digest's buttons work until the next ones.
	keepDigests = 2
)

// Pruned says what a prune deleted.
type Pruned struct {
	Alerts, Digests int
}

// maybePrune prunes when the last prune is pruneEvery ago.
func (e *Engine) maybePrune(ctx context.Context) {
	e.mu.Lock()
	now := e.now()
	due := now.Sub(e.prunedAt) >= pruneEvery
	if due {
		e.prunedAt = now
	}
	e.mu.Unlock()
	if !due {
		return
	}
	if _, err := e.Prune(ctx); err != nil {
		e.logger.Error("unable to prune old alerts and digests", "err", err)
	}
}

// Prune deletes the alerts and digests nothing needs any more: decided or
// superseded alerts older than the kept history that no share, no queued
// message and no kept alert of the same message refers to, and digests
// older than it but for the newest few and those a queued message refers
// to.
func (e *Engine) Prune(ctx context.Context) (Pruned, error) {
	var p Pruned
	now := e.now()
	alerts, digests, err := e.prunable(now)
	if err != nil {
		return p, fmt.Errorf("approvals: unable to find what to prune: %w", err)
	}
	for start := 0; start < len(alerts)+len(digests) && start < pruneBatch*pruneBatches; start += pruneBatch {
		if ctx.Err() != nil {
			break
		}
		end := min(start+pruneBatch, len(alerts)+len(digests))
		n, err := e.pruneChunk(alerts, digests, start, end)
		p.Alerts, p.Digests = p.Alerts+n.Alerts, p.Digests+n.Digests
		if err != nil {
			return p, fmt.Errorf("approvals: unable to prune old alerts and digests: %w", err)
		}
	}
	if p.Alerts+p.Digests > 0 {
		e.logger.Info("pruned old history", "alerts", p.Alerts, "digests", p.Digests)
	}
	return p, nil
}

// pruneChunk deletes entries start to end of alerts, then digests, in one
// transaction, checking again that each may go.
func (e *Engine) pruneChunk(alerts, digests []uint64, start, end int) (Pruned, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var p Pruned
	err := e.db.Update(func(tx *storage.Tx) error {
		p = Pruned{}
		for i := start; i < end; i++ {
			if i < len(alerts) {
				a, err := tx.Alert(alerts[i])
				switch {
				case errors.Is(err, storage.ErrNotFound):
					continue
				case err != nil:
					return err
				case a.State == storage.AlertPending:
					// Asked again meanwhile (it cannot be, but a
					// question must never be lost to a prune).
					continue
				}
				if err := tx.PruneAlert(a); err != nil {
					return err
				}
				p.Alerts++
				continue
			}
			if err := tx.DeleteDigest(digests[i-len(alerts)]); err != nil {
				return err
			}
			p.Digests++
		}
		return nil
	})
	if err != nil {
		return Pruned{}, err
	}
	return p, nil
}

// prunable returns the IDs of the alerts and digests that may go, oldest
// first.
func (e *Engine) prunable(now time.Time) (alerts, digests []uint64, err error) {
	err = e.db.View(func(tx *storage.Tx) error {
		alerts, digests = nil, nil
		needed := map[uint64]bool{}
		neededDigest := map[uint64]bool{}
		shares, err := tx.Shares("")
		if err != nil {
			return err
		}
		for _, s := range shares {
			needed[s.AlertID] = true
		}
		items, err := tx.Outbox()
		if err != nil {
			return err
		}
		for _, it := range items {
			needed[it.AlertID] = true
			neededDigest[it.DigestID] = true
		}
		all, err := tx.Alerts()
		if err != nil {
			return err
		}
		// A message shows all its alerts: it is kept whole while any of
		// them is.
		keptMessage := map[uint64]bool{}
		old := func(a storage.Alert) bool {
			at := a.DecidedAt
			if at.IsZero() {
				at = a.CreatedAt
			}
			return now.Sub(at) > e.keepHistory
		}
		for _, a := range all {
			if a.State == storage.AlertPending || needed[a.ID] || !old(a) {
				keptMessage[a.Message()] = true
			}
		}
		for _, a := range all {
			if !keptMessage[a.Message()] {
				alerts = append(alerts, a.ID)
			}
		}
		ds, err := tx.Digests()
		if err != nil {
			return err
		}
		for i, d := range ds {
			if i < len(ds)-keepDigests && !neededDigest[d.ID] && now.Sub(d.CreatedAt) > e.keepHistory {
				digests = append(digests, d.ID)
			}
		}
		return nil
	})
	return alerts, digests, err
}
