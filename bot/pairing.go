package bot

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

// Pairing connects doorman to a chat without the owner looking up a chat
// ID: doorman shows a one-time code where only the owner sees it (the
// terminal or log), and the first chat that sends /start with it becomes
// the owner chat.
const (
	metaOwnerChat = "owner_chat"
	// PairingValid is how long a code works.
	PairingValid = 10 * time.Minute
	// Without 0/O, 1/I/L, so a code read off a screen is typed right.
	codeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
	codeLength   = 10
)

// OwnerChat is the paired chat kept in the database.
type OwnerChat struct {
	ChatID   int64
	PairedBy storage.User
	PairedAt time.Time
	// ThreadID is the forum topic /start was sent in, 0 for none: every
	// message goes there.
	ThreadID int `json:",omitempty"`
	// LanguageCode is the Telegram language of who paired, which chooses
	// doorman's language unless DOORMAN_LANG does.
	LanguageCode string `json:",omitempty"`
}

// LoadOwnerChat returns the paired chat, 0 if none.
func LoadOwnerChat(db *storage.DB) (int64, error) {
	o, err := loadOwner(db)
	return o.ChatID, err
}

func loadOwner(db *storage.DB) (OwnerChat, error) {
	var o OwnerChat
	err := db.View(func(tx *storage.Tx) error {
		_, err := tx.Meta(metaOwnerChat, &o)
		return err
	})
	return o, err
}

type pairing struct {
	mu      sync.Mutex
	code    string
	expires time.Time
	lock    pairLock // wrong codes, per chat and user (pairlock.go)
	// show tells the owner the code: printed to the terminal, never sent
	// anywhere.
	show func(PairingCode)
	// username is the bot's, for the link that hands the code over with a
	// tap; "" while unknown.
	username string
}

// PairingCode is what the owner is shown to pair a chat.
type PairingCode struct {
	Code    string
	Expires time.Time
	// Link opens the bot in Telegram with the code filled in
	// (https://t.me/<bot>?start=<code>); "" when the bot's name is not
	// known yet.
	Link string
}

// pairingLink is the deep link that hands code to the bot: tapped, Telegram
// opens the chat with the bot and sends "/start <code>" on Start. The code's
// letters, digits and dash are all a start parameter may hold.
func pairingLink(username, code string) string {
	if username == "" || strings.Trim(username, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
		return ""
	}
	return "https://t.me/" + username + "?start=" + code
}

func newPairingCode() (string, error) {
	b := make([]byte, codeLength)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("bot: unable to make a pairing code: %w", err)
	}
	out := make([]byte, 0, codeLength+1)
	for i, c := range b {
		if i == codeLength/2 {
			out = append(out, '-')
		}
		// 256 is not a multiple of 31; the bias is a few percent on some
		// letters, which leaves far more than enough guesses.
		out = append(out, codeAlphabet[int(c)%len(codeAlphabet)])
	}
	return string(out), nil
}

// normalizeCode lets people type the code in lower case, with or without
// the dash and spaces.
func normalizeCode(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// fresh makes a new code and shows it.
func (p *pairing) fresh(now time.Time) error {
	code, err := newPairingCode()
	if err != nil {
		return err
	}
	p.code, p.expires = code, now.Add(PairingValid)
	if p.show != nil {
		p.show(PairingCode{Code: code, Expires: p.expires, Link: pairingLink(p.username, code)})
	}
	return nil
}

// usernameWait bounds how long StartPairing asks Telegram for the bot's
// name; without it the code is shown without a link.
const usernameWait = 5 * time.Second

// StartPairing shows a pairing code when no chat is paired yet; call it at
// start. It does nothing when a chat is set. It asks Telegram for the bot's
// name first, for the link that pairs with a tap.
func (b *Bot) StartPairing(ctx context.Context) error {
	if b.engine.Chat() != 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, usernameWait)
	defer cancel()
	me, err := b.api.GetMe(ctx)
	if err != nil {
		b.logger.Warn("unable to learn the bot's name; the pairing code is shown without a link", "err", err)
	}
	b.pair.mu.Lock()
	defer b.pair.mu.Unlock()
	b.pair.username = me.Username
	return b.pair.fresh(b.now())
}

// try checks a code sent by user in chat; on success it forgets the code,
// so it works once. reply is "" for an attempt to ignore: a locked chat
// reminded of its lock a moment ago.
func (p *pairing) try(w Words, code string, chat, user int64, now time.Time) (reply string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if scope, until := p.lock.locked(now, chat, user); scope != lockNone {
		if !p.lock.remind(now, chat, user) {
			return "", false
		}
		return w.lockText(scope, until, now), false
	}
	if p.code == "" || now.After(p.expires) {
		if err := p.fresh(now); err != nil {
			return w.T("PairNoNewCode"), false
		}
		return w.T("PairExpired"), false
	}
	if subtle.ConstantTimeCompare([]byte(normalizeCode(code)), []byte(normalizeCode(p.code))) != 1 {
		if scope, until := p.lock.wrong(now, chat, user); scope != lockNone {
			return w.T("PairWrong") + " " + w.lockText(scope, until, now), false
		}
		return w.T("PairWrong"), false
	}
	p.code = ""
	p.lock.reset()
	return "", true
}

// handleUnpaired answers messages while no chat is paired: only /start with
// the code counts; everything else is ignored.
func (b *Bot) handleUnpaired(ctx context.Context, msg *Message) {
	if msg.Command != "start" {
		return
	}
	w := b.audience.WordsFor(msg.From)
	// Answers go to the topic /start was sent in, which becomes the
	// owner's topic.
	reply := func(text string) {
		if _, err := b.api.SendMessage(ctx, Outgoing{ChatID: msg.ChatID, ThreadID: msg.ThreadID, HTML: text}); err != nil {
			b.logger.Warn("unable to answer a pairing attempt", "err", err)
		}
	}
	if !b.isAllowed(msg.From.ID) {
		b.logger.Warn("refused pairing by a user not among the allowed users", "user", msg.From.ID, "chat", msg.ChatID)
		reply(w.T("PairNotAllowed"))
		return
	}
	if msg.Args == "" {
		reply(w.T("PairHowTo"))
		return
	}
	text, ok := b.pair.try(w, msg.Args, msg.ChatID, msg.From.ID, b.now())
	if !ok && text == "" {
		b.logger.Debug("ignored a pairing attempt from a locked chat", "user", msg.From.ID, "chat", msg.ChatID)
		return
	}
	if !ok {
		b.logger.Warn("refused a pairing attempt", "user", msg.From.ID, "chat", msg.ChatID, "reason", text)
		reply(text)
		return
	}
	owner := OwnerChat{
		ChatID: msg.ChatID, PairedBy: storage.User{ID: msg.From.ID, Name: msg.From.Display()}, PairedAt: b.now(),
		ThreadID: msg.ThreadID, LanguageCode: msg.From.LanguageCode,
	}
	if err := b.db.Update(func(tx *storage.Tx) error { return tx.SetMeta(metaOwnerChat, owner) }); err != nil {
		b.logger.Error("unable to save the paired chat", "err", err)
		reply(w.T("PairNotSaved"))
		return
	}
	b.audience.setPaired(owner)
	b.engine.SetChat(msg.ChatID)
	// What waited for a chat goes to this one.
	b.outbox.Wake()
	b.logger.Info("paired with a chat", "chat", msg.ChatID, "topic", msg.ThreadID, "user", msg.From.ID, "lang", string(b.audience.Words(msg.ChatID).Lang()))
	reply(b.audience.Words(msg.ChatID).T("Welcome"))
	n, err := b.engine.ReportUnasked(ctx)
	if err != nil {
		b.logger.Error("unable to report the shares found before pairing", "err", err)
	}
	b.logger.Info("reported the shares found before pairing", "shares", n)
}

func (b *Bot) cmdUnpair(ctx context.Context) {
	if b.fixedChat {
		b.reply(ctx, b.words().T("UnpairFixed"), nil)
		return
	}
	chat := b.engine.Chat()
	var dropped int
	err := b.db.Update(func(tx *storage.Tx) error {
		dropped = 0
		// Nothing more goes to the chat that asked to be left alone.
		items, err := tx.Outbox()
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.ChatID == chat {
				if err := tx.RemoveOutbox(it.Seq); err != nil {
					return err
				}
				dropped++
			}
		}
		return tx.SetMeta(metaOwnerChat, OwnerChat{})
	})
	if err != nil {
		b.logger.Error("unable to forget the paired chat", "err", err)
		b.reply(ctx, b.words().T("UnpairFailed"), nil)
		return
	}
	thread, w := b.audience.Thread(chat), b.words()
	b.audience.setPaired(OwnerChat{})
	b.engine.SetChat(0)
	b.logger.Info("unpaired", "chat", chat, "dropped_messages", dropped)
	if _, err := b.api.SendMessage(ctx, Outgoing{ChatID: chat, ThreadID: thread, HTML: w.T("Unpaired"), Silent: true}); err != nil {
		b.logger.Warn("unable to answer /unpair", "err", err)
	}
	b.pair.mu.Lock()
	defer b.pair.mu.Unlock()
	if err := b.pair.fresh(b.now()); err != nil {
		b.logger.Error("unable to make a pairing code", "err", err)
	}
}
