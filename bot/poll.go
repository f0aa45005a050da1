package bot

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// PollConfig configures Poll.
type PollConfig struct {
	// Offset is the first update ID wanted, usually the one after the last
	// update handled before a restart; 0 takes whatever Telegram still
	// holds.
	Offset int
	// Timeout is how long Telegram holds a poll open waiting for updates,
	// 30s by default.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failure, 1s and 1m
	// by default.
	MinBackoff, MaxBackoff time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnError, if set, sees every failure, of polling or of handle.
	OnError func(error)
	// OnSuccess, if set, is called after every round that succeeded, with
	// or without updates; with the long poll that is at least once per
	// Timeout while Telegram is reachable.
	OnSuccess func()

	// Tests replace these; nil means the real thing.
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(d time.Duration) time.Duration // uniform in [0, d]
	now    func() time.Time
}

func (c PollConfig) withDefaults() PollConfig {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.sleep == nil {
		c.sleep = pollSleep
	}
	if c.jitter == nil {
		c.jitter = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d + 1)
		}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

func pollSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Poll long-polls api for updates and passes each non-empty batch to
// handle, until ctx is done; then it returns ctx.Err().
//
// It is written by hand rather than taken from tgbotapi's GetUpdatesChan,
// which logs the token-bearing URL on errors, sleeps a fixed 3s whatever
// the error, and cannot be stopped while a poll is open.
//
// A batch is confirmed to Telegram, by asking for the updates after it,
// only once handle returns nil. When handle fails, the same updates come
// again after a backoff, possibly with newer ones, so handle has to be
// idempotent: acting on an update and recording the offset past it are
// not atomic, here or in the caller's store. handle should fail only for
// what waiting may fix; an update it can never process should be logged
// and skipped, or it would stop the bot at that update for good.
//
// Failures never make Poll spin: it honours Telegram's retry_after, backs
// off exponentially otherwise, and waits the longest backoff while the
// token is rejected.
func Poll(ctx context.Context, api API, cfg PollConfig, handle func(ctx context.Context, updates []Update) error) error {
	cfg = cfg.withDefaults()
	p := &poller{cfg: cfg, log: cfg.Logger, offset: cfg.Offset}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.round(ctx, api, handle); err != nil {
			return err
		}
	}
}

type poller struct {
	cfg    PollConfig
	log    *slog.Logger
	offset int
	// failures counts failed rounds since the last good one; lastKind is
	// the kind of the last failure, so that a repeated explanation is
	// logged once per streak rather than once per attempt.
	failures int
	lastKind failureKind
}

type failureKind int

const (
	failNone failureKind = iota
	failPoll
	failUnauthorized
	failConflict
	failHandle
)

// round is one getUpdates call and the handling of its updates. It
// returns an error only when ctx is done.
func (p *poller) round(ctx context.Context, api API, handle func(context.Context, []Update) error) error {
	start := p.cfg.now()
	updates, err := api.GetUpdates(ctx, p.offset, p.cfg.Timeout)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return p.fail(ctx, err, classifyPollError(err), 0)
	}
	updates = p.fresh(updates)
	if len(updates) == 0 {
		p.succeed()
		// Telegram answers an empty long poll only when Timeout is over. An
		// empty answer right away means something in between ignores the
		// timeout, and polling again at once would spin.
		if elapsed := p.cfg.now().Sub(start); elapsed < p.cfg.Timeout/2 {
			p.log.Debug("telegram: empty poll came back early; pausing",
				slog.Duration("elapsed", elapsed), slog.Duration("pause", p.cfg.MinBackoff))
			return p.cfg.sleep(ctx, p.cfg.MinBackoff)
		}
		return nil
	}
	if err := handle(ctx, updates); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return p.fail(ctx, err, failHandle, len(updates))
	}
	next := p.offset
	for _, u := range updates {
		next = max(next, u.ID+1)
	}
	p.offset = next
	p.succeed()
	return nil
}

// fresh drops updates older than the offset, which Telegram has been told
// were handled already.
func (p *poller) fresh(updates []Update) []Update {
	if p.offset <= 0 {
		return updates
	}
	out := updates[:0:0]
	for _, u := range updates {
		if u.ID >= p.offset {
			out = append(out, u)
		}
	}
	return out
}

func classifyPollError(err error) failureKind {
	switch e := asAPIError(err); {
	case IsUnauthorized(err):
		return failUnauthorized
	case e != nil && e.Code == 409:
		return failConflict
	}
	return failPoll
}

func (p *poller) succeed() {
	if p.failures > 0 {
		p.log.Info("telegram: polling works again",
			slog.Int("failures", p.failures), slog.Int("offset", p.offset))
	}
	p.failures, p.lastKind = 0, failNone
	if p.cfg.OnSuccess != nil {
		p.cfg.OnSuccess()
	}
}

func (p *poller) fail(ctx context.Context, err error, kind failureKind, batch int) error {
	p.failures++
	repeated := kind == p.lastKind
	p.lastKind = kind
	if p.cfg.OnError != nil {
		p.cfg.OnError(err)
	}
	delay := p.delay(err, kind)
	attrs := []any{
		slog.Any("err", err),
		slog.Int("offset", p.offset),
		slog.Int("failures", p.failures),
		slog.Duration("retry_in", delay),
	}
	switch kind {
	case failUnauthorized:
		level := slog.LevelError
		if repeated {
			level = slog.LevelDebug
		}
		p.log.Log(ctx, level, "telegram: the bot token was rejected (revoked or mistyped?); get a valid one from @BotFather", attrs...)
	case failConflict:
		level := slog.LevelWarn
		if repeated {
			level = slog.LevelDebug
		}
		p.log.Log(ctx, level, "telegram: another doorman, or a webhook, uses this bot; only one may receive its updates", attrs...)
	case failHandle:
		p.log.Warn("telegram: handling updates failed; they will be delivered again",
			append(attrs, slog.Int("updates", batch))...)
	default:
		p.log.Warn("telegram: polling for updates failed", attrs...)
	}
	return p.cfg.sleep(ctx, delay)
}

func (p *poller) delay(err error, kind failureKind) time.Duration {
	if ra := RetryAfterOf(err); ra > 0 {
		// Telegram's flood control counts requests; coming back early only
		// extends the ban.
		return ra
	}
	if kind == failUnauthorized {
		// Only a person can fix the token, so ask as rarely as allowed.
		return p.cfg.MaxBackoff
	}
	d := p.cfg.MinBackoff
	for i := 1; i < p.failures && d < p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.cfg.MaxBackoff)
	// Half fixed, half random: the delay still grows, but clients that
	// failed together (one outage) do not all come back at once.
	return max(d/2+p.cfg.jitter(d-d/2), p.cfg.MinBackoff)
}
