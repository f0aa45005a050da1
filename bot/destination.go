package bot

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

// metaChatMoves maps a group's old chat ID to the supergroup it became, so
// that a DOORMAN_TELEGRAM_CHAT_ID still naming the group is followed after
// a restart.
const metaChatMoves = "chat_moves"

// pick is the item the outbox delivers next, and where.
type pick struct {
	item storage.OutboxItem
	// chat and thread are where it goes: the owner chat for a new
	// message, the chat of the message for an edit.
	chat   int64
	thread int
	// same holds the other queued edits of the same message, done by this
	// one because a message is rendered from the current state.
	same []uint64
}

// destination is where a new message goes: the owner chat of now, not the
// one of the time the item was queued, so that a corrected chat ID or a new
// pairing gets what waited for the old one; in the owner's topic there.
func (o *Outbox) destination() (chatID int64, threadID int) {
	chatID = o.owner.Chat()
	return chatID, o.audience.Thread(chatID)
}

// next returns the item to deliver now, or nil and how long to wait at
// most (0: until something is queued). Items go by priority, then age;
// the items of a chat Telegram refuses wait, the others go on.
func (o *Outbox) next(now time.Time) (*pick, time.Duration, error) {
	var items []storage.OutboxItem
	var lives []int64
	err := o.db.View(func(tx *storage.Tx) error {
		var err error
		if items, err = tx.Outbox(); err != nil {
			return err
		}
		sort.SliceStable(items, func(i, j int) bool { return items[i].Priority() < items[j].Priority() })
		lives = make([]int64, len(items))
		for i, it := range items {
			if lives[i], err = messageChat(tx, it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	var wait time.Duration
	soonest := func(d time.Duration) {
		if wait == 0 || d < wait {
			wait = d
		}
	}
	for i, it := range items {
		p := &pick{item: it, chat: lives[i]}
		if it.FollowsOwner() {
			p.chat, p.thread = it.ChatID, o.audience.Thread(it.ChatID)
			if o.owner != nil {
				p.chat, p.thread = o.destination()
			}
			if p.chat == 0 {
				// No chat paired: it waits for the pairing, which
				// wakes the outbox.
				continue
			}
		}
		if p.thread != 0 && o.goneTopics[p.chat] == p.thread {
			p.thread = 0
		}
		if r, ok := o.refused[p.chat]; ok && now.Before(r.until) {
			soonest(r.until.Sub(now))
			continue
		}
		if d := o.pace.next(now, p.chat); d > 0 {
			// The most urgent item waits its turn; it is picked again,
			// before anything queued meanwhile of a lower class.
			soonest(d)
			return nil, wait, nil
		}
		for _, other := range items {
			if other.Seq != it.Seq && other.SameTarget(it) {
				p.same = append(p.same, other.Seq)
			}
		}
		return p, 0, nil
	}
	return nil, wait, nil
}

// messageChat returns the chat the message an edit changes lives in, 0
// for an item that is not an edit.
func messageChat(tx *storage.Tx, it storage.OutboxItem) (int64, error) {
	switch it.Kind {
	case storage.OutboxEdit:
		a, err := tx.Alert(it.AlertID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return it.ChatID, nil
		case err != nil:
			return 0, err
		case a.MessageID != 0:
			return a.ChatID, nil
		}
	case storage.OutboxDigestEdit:
		d, err := tx.Digest(it.DigestID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return it.ChatID, nil
		case err != nil:
			return 0, err
		}
		return d.ChatID, nil
	}
	return it.ChatID, nil
}

// refusal is a chat Telegram refused, and when to try it again.
type refusal struct {
	until time.Time
}

// chatRefused handles Telegram's refusal of p.chat: a wrong chat ID, the
// bot removed or blocked, or a group that became a supergroup. It reports
// whether the item is kept.
func (o *Outbox) chatRefused(p *pick, apiErr *APIError) (keep bool) {
	isOwner := o.owner == nil || p.chat == o.owner.Chat()
	log := o.logger.With("seq", p.item.Seq, "kind", string(p.item.Kind), "chat", p.chat, "err", apiErr)
	if !isOwner {
		// An edit of a message in a chat that is no longer the owner's
		// and that Telegram refuses: that message is out of reach, and
		// what it asked is asked again in the owner chat (ReportUnasked).
		log.Warn("not editing a message in a chat doorman can no longer write to")
		return false
	}
	if to := apiErr.MigrateToChatID; to != 0 && o.owner != nil {
		if err := o.moveOwner(p.chat, to); err != nil {
			log.Error("unable to save the supergroup's chat ID; writing there until doorman restarts", "new_chat", to, "save_err", err)
		}
		if !p.item.FollowsOwner() {
			// The message stayed in the old group.
			log.Warn("not editing a message in a group that became a supergroup")
			return false
		}
		return true
	}
	if _, was := o.refused[p.chat]; !was {
		hint := "set DOORMAN_TELEGRAM_CHAT_ID to the right chat, or add the bot to the chat again, or /unpair and pair the right chat"
		if apiErr.MigrateToChatID != 0 {
			hint = fmt.Sprintf("the group is now the supergroup %d; set DOORMAN_TELEGRAM_CHAT_ID to it", apiErr.MigrateToChatID)
		}
		log.Error("Telegram refuses the owner chat; its messages wait in the outbox, the rest goes on", "fix", hint, "retry_in", o.maxBackoff)
	}
	o.refused[p.chat] = refusal{until: time.Now().Add(o.maxBackoff)}
	return true
}

// accepted forgets a refusal of chat once Telegram takes a message there.
func (o *Outbox) accepted(chat int64) {
	if _, ok := o.refused[chat]; ok {
		delete(o.refused, chat)
		o.logger.Info("Telegram accepts the chat again", "chat", chat)
	}
}

// moveOwner follows a group that became a supergroup: the owner chat is
// the new chat from now on, across restarts, whether it was paired or set.
func (o *Outbox) moveOwner(from, to int64) error {
	o.owner.SetChat(to)
	o.audience.moved(from, to)
	o.logger.Warn("the group became a supergroup; doorman writes to its new chat ID", "old_chat", from, "new_chat", to,
		"fix", "if DOORMAN_TELEGRAM_CHAT_ID is set, set it to the new chat ID")
	return o.update(func(tx *storage.Tx) error {
		moves := map[int64]int64{}
		if _, err := tx.Meta(metaChatMoves, &moves); err != nil {
			return err
		}
		moves[from] = to
		if err := tx.SetMeta(metaChatMoves, moves); err != nil {
			return err
		}
		var oc OwnerChat
		ok, err := tx.Meta(metaOwnerChat, &oc)
		if err != nil || !ok || oc.ChatID != from {
			return err
		}
		oc.ChatID = to
		return tx.SetMeta(metaOwnerChat, oc)
	})
}

// FollowChat returns the chat that chat became, following the groups that
// became supergroups, and whether it moved.
func FollowChat(db *storage.DB, chat int64) (int64, bool, error) {
	moves := map[int64]int64{}
	if err := db.View(func(tx *storage.Tx) error {
		_, err := tx.Meta(metaChatMoves, &moves)
		return err
	}); err != nil {
		return chat, false, fmt.Errorf("bot: unable to read the chats that moved: %w", err)
	}
	start := chat
	// Bounded: a loop in the map (which doorman does not write) ends too.
	for range 8 {
		to, ok := moves[chat]
		if !ok {
			break
		}
		chat = to
	}
	return chat, chat != start, nil
}
