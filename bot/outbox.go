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
	// Devices, when set, names the devices in alerts.
	Devices Devices
	// StaleAfter is shown on kept digest entries (default 14 days).
	StaleAfter time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed attempt
	// (defaults 1 s and 5 min); a 429's retry_after is honoured exactly.
	MinBackoff, MaxBackoff time.Duration
	// Audience gives the language and topic of the chat (default:
	// English, the main thread).
	Audience *Audience
	// QuietHours, in Location, make questions about ordinary shares
	// arrive without a sound.
	QuietHours QuietHours
	Now        func() time.Time
}

// Outbox delivers what approvals queued in the database: alerts, edits of
// alerts, notices. An item leaves the database only after Telegram confirmed
// it, so an outage or a crash loses nothing. A delivery under way when
// doorman stops is let finish (deliverGrace), so that a message Telegram
// took is recorded and not sent again after the restart. The windows left
// are a crash between Telegram's answer and the removal, which lasts one
// bbolt commit, and an answer slower than deliverGrace during a stop; both
// send that one message twice.
type Outbox struct {
	api        API
	db         *storage.DB
	loc        *time.Location
	logger     *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
	staleAfter time.Duration
	devices    Devices
	audience   *Audience
	quiet      QuietHours
	now        func() time.Time
	wake       chan struct{}

	// unrecorded holds messages Telegram accepted whose recording in the
	// database failed, by outbox sequence, so the retry records them
	// instead of sending them again.
	unrecorded map[uint64]int

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
		minBackoff: cfg.MinBackoff,
		maxBackoff: cfg.MaxBackoff,
		staleAfter: cfg.StaleAfter,
		devices:    cfg.Devices,
		audience:   cfg.Audience,
		quiet:      cfg.QuietHours,
		now:        cfg.Now,
		wake:       make(chan struct{}, 1),
		unrecorded: map[uint64]int{},
		sleep:      pollSleep,
	}
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

// Wake tells the outbox that something was queued.
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
		var it storage.OutboxItem
		var ok bool
		err := o.db.View(func(tx *storage.Tx) (err error) {
			it, ok, err = tx.NextOutbox()
			return err
		})
		if err != nil {
			o.logger.Error("unable to read the outbox", "err", err)
			if err := o.sleep(ctx, o.maxBackoff); err != nil {
				return err
			}
			continue
		}
		if !ok {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-o.wake:
			}
			continue
		}
		// Only a delivery under way is let finish after a stop.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = o.deliverFinishing(ctx, it)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			o.succeeded()
			continue
		}
		wait, keep := o.judge(it, err)
		if !keep {
			o.logger.Error("dropping an outbox item Telegram will never accept", "seq", it.Seq, "kind", string(it.Kind), "alert", it.AlertID, "err", err)
			if derr := o.remove(it.Seq); derr != nil {
				o.logger.Error("unable to drop an outbox item", "seq", it.Seq, "err", derr)
			}
			continue
		}
		it.Attempts++
		it.LastError = err.Error()
		if uerr := o.db.Update(func(tx *storage.Tx) error { return tx.UpdateOutbox(it) }); uerr != nil && !errors.Is(uerr, storage.ErrNotFound) {
			o.logger.Error("unable to record a failed delivery", "seq", it.Seq, "err", uerr)
		}
		if err := o.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// deliverGrace is how long a delivery under way may go on once doorman
// stops. Cutting a sendMessage short leaves doorman not knowing whether
// Telegram took it; Telegram often has, and the item, still queued, would
// show the message twice after the restart.
const deliverGrace = 3 * time.Second

// deliverFinishing delivers it, going on for up to deliverGrace after ctx
// is done.
func (o *Outbox) deliverFinishing(ctx context.Context, it storage.OutboxItem) error {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(deliverGrace, cancel) })
	defer stop()
	return o.deliver(dctx, it)
}

func (o *Outbox) succeeded() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failures > 0 {
		o.logger.Info("Telegram accepts messages again", "after_failures", o.failures)
	}
	o.lastOK, o.lastErr, o.failures = time.Now(), nil, 0
}

// judge decides how long to wait after a failed attempt, or that the item
// can never be delivered (keep == false).
func (o *Outbox) judge(it storage.OutboxItem, err error) (wait time.Duration, keep bool) {
	o.mu.Lock()
	o.lastErr = err
	o.failures++
	n := o.failures
	o.mu.Unlock()
	log := o.logger.With("seq", it.Seq, "kind", string(it.Kind), "attempt", it.Attempts+1, "err", err)
	var apiErr *APIError
	switch {
	case !errors.As(err, &apiErr):
		// Not Telegram's answer but doorman's own trouble (the database):
		// waiting may fix it, dropping would lose the alert.
		if n == 1 || n%10 == 0 {
			log.Error("unable to deliver an outbox item; will retry")
		}
		return backoff(o.minBackoff, o.maxBackoff, n), true
	case apiErr.MigrateToChatID != 0:
		if n == 1 {
			log.Error("the group became a supergroup with a new chat ID; alerts wait in the outbox until DOORMAN_TELEGRAM_CHAT_ID is set to it", "new_chat_id", apiErr.MigrateToChatID)
		}
		return o.maxBackoff, true
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
	case IsForbidden(err), isChatNotFound(err):
		if n == 1 {
			log.Error("Telegram refused the chat (bot removed from it, or a wrong DOORMAN_TELEGRAM_CHAT_ID); alerts wait in the outbox")
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

func (o *Outbox) remove(seq uint64) error {
	return o.db.Update(func(tx *storage.Tx) error { return tx.RemoveOutbox(seq) })
}

func (o *Outbox) deliver(ctx context.Context, it storage.OutboxItem) error {
	switch it.Kind {
	case storage.OutboxNotice:
		text := o.audience.Words(it.ChatID).noticeText(it, o.loc)
		if text == "" {
			o.logger.Error("outbox notice says nothing; dropping it", "seq", it.Seq)
			return o.remove(it.Seq)
		}
		// A notice reports what doorman did; it does not ring.
		if _, err := o.api.SendMessage(ctx, o.outgoing(it.ChatID, text, nil, true)); err != nil {
			return err
		}
		return o.remove(it.Seq)
	case storage.OutboxAlert, storage.OutboxEdit:
		return o.deliverAlert(ctx, it)
	case storage.OutboxDigest, storage.OutboxDigestEdit:
		return o.deliverDigest(ctx, it)
	}
	o.logger.Error("unknown outbox item kind; dropping it", "seq", it.Seq, "kind", string(it.Kind))
	return o.remove(it.Seq)
}

func (o *Outbox) deliverAlert(ctx context.Context, it storage.OutboxItem) error {
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
	v.words = o.audience.Words(it.ChatID)
	text, kb := renderMessage(alerts, v)
	switch {
	case it.Kind == storage.OutboxAlert && owner.MessageID != 0:
		// Sent before; recorded together with the removal, so this
		// only happens if the item was queued twice.
		return o.remove(it.Seq)
	case it.Kind == storage.OutboxAlert:
		silent := o.quiet.Contains(o.now().In(o.loc)) && !ringsInQuietHours(alerts)
		return o.sendAndRecord(ctx, it, text, kb, silent, fmt.Sprintf("alert %d", owner.ID), func(tx *storage.Tx, id int) error {
			for _, a := range alerts {
				cur, err := tx.Alert(a.ID)
				if err != nil {
					return err
				}
				cur.ChatID, cur.MessageID = it.ChatID, id
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
	return o.edit(ctx, it, owner.ChatID, owner.MessageID, text, kb)
}

// sendAndRecord sends a message and, in one transaction, records its ID
// with record and removes the item. When the recording fails after
// Telegram accepted the message, the retry only records it: sending it
// again would show it twice.
func (o *Outbox) sendAndRecord(ctx context.Context, it storage.OutboxItem, text string, kb Keyboard, silent bool, what string, record func(tx *storage.Tx, messageID int) error) error {
	id, sent := o.unrecorded[it.Seq]
	if !sent {
		var err error
		if id, err = o.api.SendMessage(ctx, o.outgoing(it.ChatID, text, kb, silent)); err != nil {
			return err
		}
	}
	err := o.db.Update(func(tx *storage.Tx) error {
		if err := record(tx, id); err != nil {
			return err
		}
		return tx.RemoveOutbox(it.Seq)
	})
	if err != nil {
		o.unrecorded[it.Seq] = id
		return fmt.Errorf("bot: unable to record %s as sent: %w", what, err)
	}
	delete(o.unrecorded, it.Seq)
	return nil
}

// edit updates a sent message; one deleted in the chat, or already showing
// the text, needs nothing more.
func (o *Outbox) edit(ctx context.Context, it storage.OutboxItem, chatID int64, messageID int, text string, kb Keyboard) error {
	err := o.api.EditMessage(ctx, chatID, messageID, text, kb)
	switch {
	case err == nil, IsNotModified(err):
	case IsMessageGone(err):
		o.logger.Warn("the message was deleted in the chat; not editing it", "seq", it.Seq, "kind", string(it.Kind), "message", messageID)
	default:
		return err
	}
	return o.remove(it.Seq)
}

// outgoing addresses a message to a chat, in the topic the owner chose.
func (o *Outbox) outgoing(chatID int64, text string, kb Keyboard, silent bool) Outgoing {
	return Outgoing{ChatID: chatID, ThreadID: o.audience.Thread(chatID), HTML: text, Keyboard: kb, Silent: silent}
}

// ringsInQuietHours reports whether a question rings even in quiet hours:
// one about a port attackers scan for.
func ringsInQuietHours(alerts []storage.Alert) bool {
	for _, a := range alerts {
		if _, risky := approvals.RiskOf(a.Share.Mapping.InternalPort); risky {
			return true
		}
	}
	return false
}

func (o *Outbox) deliverDigest(ctx context.Context, it storage.OutboxItem) error {
	var d storage.Digest
	err := o.db.View(func(tx *storage.Tx) (err error) { d, err = tx.Digest(it.DigestID); return err })
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (it.Page < 0 || it.Page >= len(d.MessageIDs))) {
		o.logger.Warn("outbox item names a digest page that does not exist", "seq", it.Seq, "digest", it.DigestID, "page", it.Page)
		return o.remove(it.Seq)
	}
	if err != nil {
		return fmt.Errorf("bot: unable to read digest %d: %w", it.DigestID, err)
	}
	text, kb := renderDigestPage(o.audience.Words(d.ChatID), d, it.Page, o.staleAfter, o.loc)
	sent := d.MessageIDs[it.Page]
	switch {
	case it.Kind == storage.OutboxDigest && sent != 0:
		return o.remove(it.Seq)
	case it.Kind == storage.OutboxDigest:
		// The digest is a weekly read, not an alarm.
		return o.sendAndRecord(ctx, it, text, kb, true, fmt.Sprintf("digest %d", d.ID), func(tx *storage.Tx, id int) error {
			cur, err := tx.Digest(d.ID)
			if err != nil {
				return err
			}
			cur.MessageIDs[it.Page] = id
			return tx.PutDigest(&cur)
		})
	case sent == 0:
		return o.remove(it.Seq)
	}
	return o.edit(ctx, it, d.ChatID, sent, text, kb)
}
