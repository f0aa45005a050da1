package approvals

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

// metaPresence keeps when each device was last seen, so that "not seen for a
// day" survives a restart of doorman.
const metaPresence = "presence"

// presenceEvery spaces the checks: the question is whether a device has been
// gone for a day, and each check may probe every device once.
const presenceEvery = 5 * time.Minute

// PresenceTracker remembers when devices were last seen on the LAN. It only
// speaks about devices it has seen before and after watching for a day, so a
// device on another network, or one doorman cannot see, is never called
// away.
type PresenceTracker struct {
	db     *storage.DB
	now    func() time.Time
	logger *slog.Logger
	// seen tells whether the device answers on the LAN now; it may probe
	// it, so it runs outside any lock and off the listing's path.
	seen    func(ctx context.Context, ip string) bool
	running atomic.Bool

	mu      sync.Mutex
	state   presenceState
	checked time.Time
}

type presenceState struct {
	Since    time.Time            // when tracking began
	LastSeen map[string]time.Time // by IP
}

// NewPresenceTracker loads what was tracked before. A nil now means
// time.Now, a nil logger discards. What cannot be loaded is logged and
// tracking starts afresh: presence only lets the digest name devices
// that left.
func NewPresenceTracker(db *storage.DB, seen func(ctx context.Context, ip string) bool, now func() time.Time, logger *slog.Logger) *PresenceTracker {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &PresenceTracker{db: db, seen: seen, now: now, logger: logger}
	err := db.View(func(tx *storage.Tx) error {
		_, err := tx.Meta(metaPresence, &p.state)
		return err
	})
	if err != nil {
		logger.Warn("presence: loading when devices were last seen; starting afresh", "err", err)
		p.state = presenceState{}
	}
	if p.state.Since.IsZero() {
		p.state.Since = now()
	}
	if p.state.LastSeen == nil {
		p.state.LastSeen = map[string]time.Time{}
	}
	return p
}

// Sample checks, in the background and at most every few minutes, which of
// the devices behind ips are on the LAN. It never blocks the caller.
func (p *PresenceTracker) Sample(ctx context.Context, ips []string) {
	p.mu.Lock()
	due := p.now().Sub(p.checked) >= presenceEvery
	if due {
		p.checked = p.now()
	}
	p.mu.Unlock()
	if !due || !p.running.CompareAndSwap(false, true) {
		return
	}
	// The caller's context may end with its listing; each check is
	// bounded by seen's own timeout.
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer p.running.Store(false)
		p.check(ctx, ips)
	}()
}

func (p *PresenceTracker) check(ctx context.Context, ips []string) {
	seen := map[string]bool{}
	for _, ip := range ips {
		if _, done := seen[ip]; done || ctx.Err() != nil {
			continue
		}
		seen[ip] = p.seen(ctx, ip)
	}
	now := p.now()
	p.mu.Lock()
	for ip, ok := range seen {
		if ok {
			p.state.LastSeen[ip] = now
		}
	}
	st := presenceState{Since: p.state.Since, LastSeen: maps.Clone(p.state.LastSeen)}
	p.mu.Unlock()
	// Written without the lock: the digest reads presence inside a
	// database write, and waiting on each other would stop both.
	if err := p.db.Update(func(tx *storage.Tx) error { return tx.SetMeta(metaPresence, st) }); err != nil {
		p.logger.Error("presence: saving when devices were last seen", "err", err)
	}
}

// LastSeen implements Presence.
func (p *PresenceTracker) LastSeen(ip string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.now().Sub(p.state.Since) < 24*time.Hour {
		return time.Time{}, false
	}
	t, ok := p.state.LastSeen[ip]
	return t, ok
}
