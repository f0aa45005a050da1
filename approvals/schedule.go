package approvals

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/doorman-upnp/doorman/storage"
)

// DefaultDigestSchedule is Monday at nine, when people read their week's
// messages.
const DefaultDigestSchedule = "0 9 * * MON"

// metaDigestDue remembers the scheduled time of the last digest made, so
// that one missed while doorman was down can be sent late, once.
const metaDigestDue = "digest_last_due"

// missedGrace is how late a missed digest may still be sent at start.
const missedGrace = 24 * time.Hour

// ParseSchedule parses a standard 5-field cron spec.
func ParseSchedule(spec string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a 5-field cron schedule (for example %q): %w", spec, DefaultDigestSchedule, err)
	}
	// cron gives the zero time for a date that never comes (30 February).
	if s.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("%q never comes due", spec)
	}
	return s, nil
}

// MissedDue returns the latest time the schedule was due in the grace
// period before now and after lastDone, if there is one.
func MissedDue(s cron.Schedule, lastDone, now time.Time) (time.Time, bool) {
	var due time.Time
	for t := s.Next(now.Add(-missedGrace)); !t.IsZero() && !t.After(now); t = s.Next(t) {
		due = t
	}
	if due.IsZero() || !due.After(lastDone) {
		return time.Time{}, false
	}
	return due, true
}

// DigestScheduler sends the digest on a cron schedule.
type DigestScheduler struct {
	engine    *Engine
	db        *storage.DB
	schedule  cron.Schedule
	loc       *time.Location
	skipEmpty bool
	logger    *slog.Logger
}

// NewDigestScheduler returns a scheduler for spec in loc.
func NewDigestScheduler(e *Engine, spec string, loc *time.Location, skipEmpty bool, logger *slog.Logger) (*DigestScheduler, error) {
	s, err := ParseSchedule(spec)
	if err != nil {
		return nil, err
	}
	if loc == nil {
		loc = time.Local
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &DigestScheduler{engine: e, db: e.db, schedule: s, loc: loc, skipEmpty: skipEmpty, logger: logger}, nil
}

// Run sends a digest missed while doorman was down (less than a day late),
// then one at every scheduled time, until ctx is done.
func (d *DigestScheduler) Run(ctx context.Context) error {
	now := d.engine.now().In(d.loc)
	var last time.Time
	found := false
	if err := d.db.View(func(tx *storage.Tx) (err error) { found, err = tx.Meta(metaDigestDue, &last); return err }); err != nil {
		d.logger.Error("unable to read when the last digest was sent", "err", err)
	}
	if !found {
		// A new installation has missed nothing.
		d.markDone(now)
	} else if due, ok := MissedDue(d.schedule, last, now); ok {
		d.logger.Info("sending the digest missed while doorman was down", "due", due)
		d.send(ctx, due)
	}

	clog := cronLogger{d.logger}
	c := cron.New(
		cron.WithLocation(d.loc),
		cron.WithLogger(clog),
		// In cron v3.0.1 the order matters: SkipIfStillRunning must come
		// before Recover, or a panic leaves the skip lock taken and the
		// job never runs again. cron.New recovers nothing by itself.
		cron.WithChain(cron.SkipIfStillRunning(clog), cron.Recover(clog)),
	)
	c.Schedule(d.schedule, cron.FuncJob(func() {
		d.send(ctx, d.engine.now().In(d.loc).Truncate(time.Minute))
	}))
	c.Start()
	d.logger.Info("digest scheduled", "next", d.schedule.Next(now))
	<-ctx.Done()
	<-c.Stop().Done()
	return ctx.Err()
}

func (d *DigestScheduler) send(ctx context.Context, due time.Time) {
	if _, err := d.engine.MakeDigest(ctx, due, d.skipEmpty); err != nil {
		d.logger.Error("unable to make the digest", "err", err)
		return
	}
	d.markDone(due)
}

func (d *DigestScheduler) markDone(due time.Time) {
	if err := d.db.Update(func(tx *storage.Tx) error { return tx.SetMeta(metaDigestDue, due) }); err != nil {
		d.logger.Error("unable to record the digest", "err", err)
	}
}

// cronLogger passes cron's log to slog; its routine messages are debug.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append([]any{"err", err}, kv...)...)
}
