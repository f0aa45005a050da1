package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/storage"
)

// OutboxConfig configures an Outbox.
type OutboxConfig struct {
	API      API
	DB       *storage.DB
	Location *time.Location
	Logger   *slog.Logger
	// Owner keeps the owner chat, where everything but an edit goes when
	// it is sent; bot.New sets the engine here when it is nil. Without
	// one, items go to the chat they were queued for.
	Owner ChatOwner
	// Devices, when set, names the devices in alerts.
	Devices Devices
	// StaleAfter is shown on kept digest entries (default 14 days).
	StaleAfter time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed attempt
	// (defaults 1 s and 5 min); a 429's retry_after is honoured exactly.
	// A chat Telegram refuses is tried again after MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Pace keeps the outbox within Telegram's limits (defaults: Pace).
	Pace Pace
	// Audience gives the language and topic of the chat (default:
	// English, the main thread).
	Audience *Audience
	// QuietHours, in Location, make questions about ordinary shares
	// arrive without a sound.
	QuietHours QuietHours
	Now        func() time.Time
}

// ChatOwner keeps the owner chat; approvals.Engine is one.
type ChatOwner interface {
	Chat() int64
	SetChat(chatID int64)
}

// Outbox delivers what approvals queued in the database: alerts, edits of
// alerts, notices, digests. An item leaves the database only after
// Telegram confirmed it, so an outage or a crash loses nothing. A delivery
// under way when doorman stops is let finish (deliverGrace), so that a
// message Telegram took is recorded and not sent again after the restart.
// The windows left are a crash between Telegram's answer and the removal,
// which lasts one bbolt commit, and an answer slower than deliverGrace
// during a stop; both send that one message twice.
//
// Items go by priority (storage.OutboxClass: questions, then edits, then
// notices, then digests), oldest first within a class, paced chat by chat
// (Pace), so that a new question waits for at most one pacing interval
// whatever else is queued. Edits of one message queued meanwhile are done
// by one call.
type Outbox struct {
	api        API
	db         *storage.DB
	loc        *time.Location
	logger     *slog.Logger
	owner      ChatOwner
	minBackoff time.Duration
	maxBackoff time.Duration
	staleAfter time.Duration
	devices    Devices
	audience   *Audience
	quiet      QuietHours
	now        func() time.Time
	wake       chan struct{}
	// update writes to the database; tests make it fail.
	update func(fn func(tx *storage.Tx) error) error

	// The fields below belong to Run's one loop.

	// unrecorded holds messages Telegram accepted whose recording in the
	// database failed, by outbox sequence, so the retry records them
	// instead of sending them again, in the chat they went to.
	unrecorded map[uint64]sentMessage
	pace       *pacer
	// refused holds the chats Telegram refuses (a wrong chat ID, the bot
	// removed): their items wait while the others go on.
	refused map[int64]refusal
	// goneTopics holds, by chat, a forum topic Telegram says is not there
	// (deleted, or a wrong DOORMAN_TELEGRAM_TOPIC_ID): messages then go to
	// the chat's main thread rather than nowhere.
	goneTopics map[int64]int

	mu       sync.Mutex
	lastOK   time.Time
	lastErr  error
	sleep    func(ctx context.Context, d time.Duration) error
	failures int
}

// NewOutbox returns an Outbox for cfg.
func NewOutbox(cfg OutboxConfig) *Outbox {
	o := &Outbox{
		api:        cfg.API,
		db:         cfg.DB,
		loc:        cfg.Location,
		logger:     cfg.Logger,
		owner:      cfg.Owner,
		minBackoff: cfg.MinBackoff,
		maxBackoff: cfg.MaxBackoff,
		staleAfter: cfg.StaleAfter,
		devices:    cfg.Devices,
		audience:   cfg.Audience,
		quiet:      cfg.QuietHours,
		now:        cfg.Now,
		wake:       make(chan struct{}, 1),
		unrecorded: map[uint64]sentMessage{},
		pace:       newPacer(cfg.Pace),
		refused:    map[int64]refusal{},
		goneTopics: map[int64]int{},
		sleep:      pollSleep,
	}
	o.update = o.db.Update
	if o.loc == nil {
		o.loc = time.Local
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.audience == nil {
		o.audience = defaultAudience(o.db, o.logger)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.staleAfter <= 0 {
		o.staleAfter = approvals.DefaultStaleAfter
	}
	if o.minBackoff <= 0 {
		o.minBackoff = time.Second
	}
	if o.maxBackoff <= 0 {
		o.maxBackoff = 5 * time.Minute
	}
	return o
}

// Wake tells the outbox that something was queued, or that the owner chat
// changed.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Health returns when Telegram last confirmed a message and the last
// delivery error since then, if any.
func (o *Outbox) Health() (lastOK time.Time, lastErr error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastOK, o.lastErr
}

// Len returns the number of items waiting, for /status; -1 when the
// database cannot be read, which is logged.
func (o *Outbox) Len() int {
	var n int
	if err := o.db.View(func(tx *storage.Tx) error {
		_, _, _, n = tx.Count()
		return nil
	}); err != nil {
		o.logger.Error("unable to count the messages waiting", "err", err)
		return -1
	}
	return n
}

// Run delivers items until ctx is done.
func (o *Outbox) Run(ctx context.Context) error {
	for {
		// Pacing and the retries of a refused chat wait on timers, so
		// they go by the real clock, not by Now (quiet hours).
		p, wait, err := o.next(time.Now())
		if err != nil {
			o.logger.Error("unable to read the outbox", "err", err)
			if err := o.sleep(ctx, o.maxBackoff); err != nil {
				return err
			}
			continue
		}
		if p == nil {
			if err := o.idle(ctx, wait); err != nil {
				return err
			}
			continue
		}
		// Only a delivery under way is let finish after a stop.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = o.deliverFinishing(ctx, p)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			o.succeeded(p.chat)
			continue
		}
		it := p.item
		wait, keep := o.judge(p, err)
		if !keep {
			o.logger.Error("dropping an outbox item Telegram will never accept", "seq", it.Seq, "kind", string(it.Kind), "alert", it.AlertID, "same", len(p.same), "err", err)
			// The other queued edits of the message render the same and
			// would each be refused the same way.
			if derr := o.remove(append([]uint64{it.Seq}, p.same...)...); derr != nil {
				o.logger.Error("unable to drop an outbox item", "seq", it.Seq, "err", derr)
			}
			continue
		}
		it.Attempts++
		it.LastError = err.Error()
		if uerr := o.update(func(tx *storage.Tx) error { return tx.UpdateOutbox(it) }); uerr != nil && !errors.Is(uerr, storage.ErrNotFound) {
			o.logger.Error("unable to record a failed delivery", "seq", it.Seq, "err", uerr)
		}
		if err := o.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// idle waits for something to be queued, or for wait when it is not 0.
func (o *Outbox) idle(ctx context.Context, wait time.Duration) error {
	var timer <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-o.wake:
	case <-timer:
	}
	return nil
}

// deliverGrace is how long a delivery under way may go on once doorman
// stops. Cutting a sendMessage short leaves doorman not knowing whether
// Telegram took it; Telegram often has, and the item, still queued, would
// show the message twice after the restart.
const deliverGrace = 3 * time.Second

// deliverFinishing delivers it, going on for up to deliverGrace after ctx
// is done.
func (o *Outbox) deliverFinishing(ctx context.Context, p *pick) error {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(deliverGrace, cancel) })
	defer stop()
	return o.deliver(dctx, p)
}

func (o *Outbox) succeeded(chat int64) {
	o.accepted(chat)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failures > 0 {
		o.logger.Info("Telegram accepts messages again", "after_failures", o.failures)
	}
	o.lastOK, o.lastErr, o.failures = time.Now(), nil, 0
}

// judge decides how long to wait after a failed attempt, or that the item
// can never be delivered (keep == false). A chat Telegram refuses holds up
// only the items for it (see refuse), so the wait is then 0.
func (o *Outbox) judge(p *pick, err error) (wait time.Duration, keep bool) {
	it := p.item
	o.mu.Lock()
	o.lastErr = err
	o.failures++
	n := o.failures
	o.mu.Unlock()
	log := o.logger.With("seq", it.Seq, "kind", string(it.Kind), "chat", p.chat, "attempt", it.Attempts+1, "err", err)
	var apiErr *APIError
	if errors.As(err, &apiErr) && (apiErr.MigrateToChatID != 0 || IsForbidden(err) || isChatNotFound(err)) {
		return 0, o.chatRefused(p, apiErr)
	}
	if p.thread != 0 && isThreadNotFound(err) {
		log.Error("Telegram says the forum topic is not there; messages go to the chat's main thread until doorman restarts", "topic", p.thread)
		o.goneTopics[p.chat] = p.thread
		return 0, true
	}
	switch {
	case !errors.As(err, &apiErr):
		// Not Telegram's answer but doorman's own trouble (the database):
		// waiting may fix it, dropping would lose the alert.
		if n == 1 || n%10 == 0 {
			log.Error("unable to deliver an outbox item; will retry")
		}
		return backoff(o.minBackoff, o.maxBackoff, n), true
	case RetryAfterOf(err) > 0:
		log.Warn("Telegram asks doorman to slow down", "retry_after", RetryAfterOf(err))
		return RetryAfterOf(err), true
	case IsUnauthorized(err):
		// The owner has to fix this (new token); nothing is dropped
		// meanwhile, and the retries stay slow.
		if n == 1 {
			log.Error("Telegram rejected the bot token; alerts wait in the outbox until it is fixed")
		}
		return o.maxBackoff, true
	case IsRetryable(err):
		if n == 1 || n%10 == 0 {
			log.Warn("unable to reach Telegram; will retry")
		}
		return backoff(o.minBackoff, o.maxBackoff, n), true
	}
	return 0, false
}

func isThreadNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == 400 && strings.Contains(strings.ToLower(e.Description), "thread not found")
}

func isChatNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == 400 && strings.Contains(strings.ToLower(e.Description), "chat not found")
}

// backoff is exponential with jitter, so that many doormen behind one
// outage do not retry in step.
func backoff(minD, maxD time.Duration, n int) time.Duration {
	d := minD
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	return d/2 + rand.N(d/2+1)
}

// remove deletes delivered items.
func (o *Outbox) remove(seqs ...uint64) error {
	return o.update(func(tx *storage.Tx) error {
		for _, seq := range seqs {
			if err := tx.RemoveOutbox(seq); err != nil {
				return err
			}
		}
		return nil
	})
}

func (o *Outbox) deliver(ctx context.Context, p *pick) error {
	it := p.item
	switch it.Kind {
	case storage.OutboxNotice:
		text := o.audience.Words(p.chat).noticeText(it, o.loc)
		if text == "" {
			o.logger.Error("outbox notice says nothing; dropping it", "seq", it.Seq)
			return o.remove(it.Seq)
		}
		// Like an alert, a notice Telegram took is not sent again when
		// its removal fails. A notice reports what doorman did; it does
		// not ring.
		return o.sendAndRecord(ctx, p, text, nil, true, "notice", func(*storage.Tx, int) error { return nil })
	case storage.OutboxAlert, storage.OutboxEdit:
		return o.deliverAlert(ctx, p)
	case storage.OutboxDigest, storage.OutboxDigestEdit:
		return o.deliverDigest(ctx, p)
	}
	o.logger.Error("unknown outbox item kind; dropping it", "seq", it.Seq, "kind", string(it.Kind))
	return o.remove(it.Seq)
}

func (o *Outbox) deliverAlert(ctx context.Context, p *pick) error {
	it := p.item
	var alerts []storage.Alert
	err := o.db.View(func(tx *storage.Tx) (err error) {
		alerts, err = tx.MessageAlerts(it.AlertID)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		o.logger.Warn("outbox item names an alert that no longer exists", "seq", it.Seq, "alert", it.AlertID)
		return o.remove(it.Seq)
	}
	if err != nil {
		return fmt.Errorf("bot: unable to read alert %d: %w", it.AlertID, err)
	}
	owner := alerts[0]
	v := makeView(ctx, o.db, o.devices, o.loc, alerts)
	v.words = o.audience.Words(p.chat)
	text, kb := renderMessage(alerts, v)
	switch {
	case it.Kind == storage.OutboxAlert && owner.MessageID != 0:
		// Sent before; recorded together with the removal, so this
		// only happens if the item was queued twice.
		return o.remove(it.Seq)
	case it.Kind == storage.OutboxAlert && !anyPending(alerts):
		// Superseded or decided (a sibling's answer, a rule) before it
		// went out: the question is moot, and a newer message, if any,
		// asks what is left.
		o.logger.Info("not sending a question answered or superseded before it went out", "seq", it.Seq, "alert", owner.ID, "state", string(owner.State))
		return o.remove(it.Seq)
	case it.Kind == storage.OutboxAlert:
		silent := o.quiet.Contains(o.now().In(o.loc)) && !ringsInQuietHours(alerts)
		return o.sendAndRecord(ctx, p, text, kb, silent, fmt.Sprintf("alert %d", owner.ID), func(tx *storage.Tx, id int) error {
			for _, a := range alerts {
				cur, err := tx.Alert(a.ID)
				if err != nil {
					return err
				}
				cur.ChatID, cur.MessageID = p.chat, id
				if err := tx.PutAlert(&cur); err != nil {
					return err
				}
			}
			return nil
		})
	case owner.MessageID == 0:
		o.logger.Warn("not editing an alert whose message was never sent", "alert", owner.ID)
		return o.remove(it.Seq)
	}
	return o.edit(ctx, p, owner.MessageID, text, kb)
}

func anyPending(alerts []storage.Alert) bool {
	for _, a := range alerts {
		if a.State == storage.AlertPending {
			return true
		}
	}
	return false
}

// sendAndRecord sends a message and, in one transaction, records its ID
// with record and removes the item. When the recording fails after
// Telegram accepted the message, the retry only records it: sending it
// again would show it twice.
func (o *Outbox) sendAndRecord(ctx context.Context, p *pick, text string, kb Keyboard, silent bool, what string, record func(tx *storage.Tx, messageID int) error) error {
	it := p.item
	u, sent := o.unrecorded[it.Seq]
	id := u.id
	if sent {
		// The message lives where it went, whatever the owner chat is
		// now; record reads p.chat.
		p.chat = u.chat
	} else {
		var err error
		o.pace.took(time.Now(), p.chat)
		if id, err = o.api.SendMessage(ctx, o.outgoing(p, text, kb, silent)); err != nil {
			return err
		}
	}
	err := o.update(func(tx *storage.Tx) error {
		if err := record(tx, id); err != nil {
			return err
		}
		return tx.RemoveOutbox(it.Seq)
	})
	if err != nil {
		o.unrecorded[it.Seq] = sentMessage{chat: p.chat, id: id}
		return fmt.Errorf("bot: unable to record %s as sent: %w", what, err)
	}
	delete(o.unrecorded, it.Seq)
	return nil
}

// sentMessage is a message Telegram took: its chat and ID.
type sentMessage struct {
	chat int64
	id   int
}

// edit updates a sent message in p.chat, the chat it lives in; one
// deleted in the chat, or already showing the text, needs nothing more.
// The edits of the same message queued before this one rendered (p.same)
// are done with it.
func (o *Outbox) edit(ctx context.Context, p *pick, messageID int, text string, kb Keyboard) error {
	it := p.item
	o.pace.took(time.Now(), p.chat)
	err := o.api.EditMessage(ctx, p.chat, messageID, text, kb)
	switch {
	case err == nil, IsNotModified(err):
	case IsMessageGone(err):
		o.logger.Warn("the message was deleted in the chat; not editing it", "seq", it.Seq, "kind", string(it.Kind), "message", messageID)
	default:
		return err
	}
	return o.remove(append([]uint64{it.Seq}, p.same...)...)
}

// outgoing addresses a message to where p goes (see destination).
func (o *Outbox) outgoing(p *pick, text string, kb Keyboard, silent bool) Outgoing {
	return Outgoing{ChatID: p.chat, ThreadID: p.thread, HTML: text, Keyboard: kb, Silent: silent}
}

// ringsInQuietHours reports whether a question rings even in quiet hours:
// one about a port attackers scan for, or about a device that opens shares
// like malware does.
func ringsInQuietHours(alerts []storage.Alert) bool {
	for _, a := range alerts {
		if a.Busy {
			return true
		}
		if _, risky := approvals.RiskOf(a.Share.Mapping.InternalPort); risky {
			return true
		}
	}
	return false
}

func (o *Outbox) deliverDigest(ctx context.Context, p *pick) error {
	it := p.item
	var d storage.Digest
	err := o.db.View(func(tx *storage.Tx) (err error) { d, err = tx.Digest(it.DigestID); return err })
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (it.Page < 0 || it.Page >= len(d.MessageIDs))) {
		o.logger.Warn("outbox item names a digest page that does not exist", "seq", it.Seq, "digest", it.DigestID, "page", it.Page)
		return o.remove(it.Seq)
	}
	if err != nil {
		return fmt.Errorf("bot: unable to read digest %d: %w", it.DigestID, err)
	}
	text, kb := renderDigestPage(o.audience.Words(p.chat), d, it.Page, o.staleAfter, o.loc)
	sent := d.MessageIDs[it.Page]
	switch {
	case it.Kind == storage.OutboxDigest && sent != 0:
		return o.remove(it.Seq)
	case it.Kind == storage.OutboxDigest:
		// The digest is a weekly read, not an alarm.
		return o.sendAndRecord(ctx, p, text, kb, true, fmt.Sprintf("digest %d", d.ID), func(tx *storage.Tx, id int) error {
			cur, err := tx.Digest(d.ID)
			if err != nil {
				return err
			}
			// The chat of the page sent last: the pages of a digest go
			// to one chat unless the owner moved while it went out.
			cur.ChatID = p.chat
			cur.MessageIDs[it.Page] = id
			return tx.PutDigest(&cur)
		})
	case sent == 0:
		return o.remove(it.Seq)
	}
	return o.edit(ctx, p, sent, text, kb)
}
