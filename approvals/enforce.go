package approvals

import (
	"context"
	"errors"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// enforcement is a share a block rule says to close.
type enforcement struct {
	rule  storage.Rule
	share storage.Share
}

// enforce closes a share a block rule covers and tells the chat, at most
// once per notice interval and rule.
func (e *Engine) enforce(ctx context.Context, en enforcement) {
	m := en.share.Mapping
	err := e.router.DeleteListedMapping(ctx, m)
	log := e.logger.With("router", m.Router, "share", m.Key().String(), "client", m.InternalClient, "rule", en.rule.ID)
	if errors.Is(err, watcher.ErrMappingChanged) {
		// Another device holds the port by now: nothing was deleted, and
		// the listing the watcher makes judges that share on its own.
		log.Info("not closing a blocked share that leads elsewhere now", "err", err)
		return
	}
	if err != nil {
		log.Warn("unable to close a blocked share", "err", err)
	} else {
		log.Info("closed a blocked share again")
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	key := storage.ShareKey(m.Key())
	if err != nil {
		e.refused[key] = now
	} else {
		delete(e.refused, key)
	}
	if e.observe != nil {
		kind := EventClosed
		if err != nil {
			kind = EventRefused
		}
		e.observe(Event{Kind: kind, Mapping: m, Time: now, Rule: storage.RuleBlock, Err: err})
	}
	chat := e.Chat()
	var sent bool
	uerr := e.db.Update(func(tx *storage.Tx) error {
		sent = false
		r, rerr := tx.Rule(en.rule.ID)
		if errors.Is(rerr, storage.ErrNotFound) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
		if err == nil {
			if merr := e.markGone(tx, m, now); merr != nil {
				return merr
			}
		}
		if chat == 0 || (!r.NoticeAt.IsZero() && now.Sub(r.NoticeAt) < e.noticeInterval) {
			r.Unreported++
			return tx.PutRule(&r)
		}
		notice := reblockNotice(r, m, err, r.Unreported)
		r.NoticeAt, r.Unreported = now, 0
		if err := tx.PutRule(&r); err != nil {
			return err
		}
		sent = true
		return tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxNotice, ChatID: chat, Notice: notice, CreatedAt: now})
	})
	if uerr != nil {
		log.Error("unable to record closing a blocked share", "err", uerr)
		return
	}
	if sent {
		e.wake()
	}
}

// reblockNotice tells what a block rule did with a share, with the times it
// acted since the last notice.
func reblockNotice(r storage.Rule, m watcher.Mapping, err error, unreported int) *storage.Notice {
	n := &storage.Notice{Kind: storage.NoticeClosedAgain, Mapping: m, Unreported: unreported}
	if err != nil {
		n.Kind, n.Note = storage.NoticeBlockedOpen, closeNote(err)
		return n
	}
	if r.CreatedBy.Name != "" {
		n.RuleSince, n.RuleBy = r.CreatedAt, r.CreatedBy
	}
	return n
}
