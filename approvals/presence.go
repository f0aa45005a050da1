package approvals

import (
	"sync"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

// metaPresence keeps when each device was last seen, so that "not seen for a
// day" survives a restart of doorman.
const metaPresence = "presence"

// PresenceTracker remembers when devices were last seen on the LAN, from
// the kernel's neighbour table as sampled at every listing. It only speaks
// about devices once it has watched for a day, and only where doorman
// shares the LAN with them (seen is never set otherwise).
type PresenceTracker struct {
	db    *storage.DB
	seen  func(ip string) bool
	now   func() time.Time
	mu    sync.Mutex
	state presenceState
	dirty time.Time
}

type presenceState struct {
	Since    time.Time            // when tracking began
	LastSeen map[string]time.Time // by IP
	// Sees is set once any device was seen at all: without a neighbour
	// table (another network), nothing can be told.
	Sees bool
}

// NewPresenceTracker loads what was tracked before. seen reports whether
// the kernel currently knows the device's MAC.
func NewPresenceTracker(db *storage.DB, seen func(ip string) bool, now func() time.Time) *PresenceTracker {
	if now == nil {
		now = time.Now
	}
	p := &PresenceTracker{db: db, seen: seen, now: now}
	db.View(func(tx *storage.Tx) error {
		_, err := tx.Meta(metaPresence, &p.state)
		return err
	})
	if p.state.Since.IsZero() {
		p.state.Since = now()
	}
	if p.state.LastSeen == nil {
		p.state.LastSeen = map[string]time.Time{}
	}
	return p
}

// Sample records which of the devices behind ips are on the LAN now.
func (p *PresenceTracker) Sample(ips []string) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ip := range ips {
		if p.seen(ip) {
			p.state.LastSeen[ip] = now
			p.state.Sees = true
		}
	}
	// A write per listing would be wasteful; the precision needed is a
	// day.
	if now.Sub(p.dirty) < 10*time.Minute {
		return
	}
	p.dirty = now
	st := p.state
	p.db.Update(func(tx *storage.Tx) error { return tx.SetMeta(metaPresence, st) })
}

// LastSeen implements Presence.
func (p *PresenceTracker) LastSeen(ip string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.state.Sees || p.now().Sub(p.state.Since) < 24*time.Hour {
		return time.Time{}, false
	}
	if t, ok := p.state.LastSeen[ip]; ok {
		return t, true
	}
	return p.state.Since, true
}
