// Package approvalstest has the test doubles of what approvals needs from
// the world, shared by the tests of approvals and bot.
package approvalstest

import (
	"context"
	"slices"
	"sync"

	"github.com/doorman-upnp/doorman/watcher"
)

// Router is a fake approvals.Router: it records deletes and answers them
// with Err. Set Err while no delete is under way.
type Router struct {
	Err error
	// Changed holds, by key, the share another device put on a key since
	// it was listed. Set it while no delete is under way.
	Changed map[watcher.Key]watcher.Mapping

	mu      sync.Mutex
	deletes []watcher.Key
	hold    chan struct{}
	entered chan watcher.Key
}

// DeleteListedMapping records the delete; while the router is held it first
// waits for a release (or ctx). Err answers it, unless Changed holds what
// the router reports now for the share's key: then the answer is a
// *watcher.MappingChangedError and nothing is recorded.
func (r *Router) DeleteListedMapping(ctx context.Context, m watcher.Mapping) error {
	k := m.Key()
	r.mu.Lock()
	if now, ok := r.Changed[k]; ok {
		r.mu.Unlock()
		return &watcher.DeleteError{Key: k, Err: &watcher.MappingChangedError{Listed: m, Now: now}}
	}
	r.deletes = append(r.deletes, k)
	hold, entered, err := r.hold, r.entered, r.Err
	r.mu.Unlock()
	if hold == nil {
		return err
	}
	entered <- k
	select {
	case <-hold:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Deletes returns the keys deleted so far, in order.
func (r *Router) Deletes() []watcher.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deletes)
}

// Count returns the number of deletes so far.
func (r *Router) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.deletes)
}

// Hold makes every later delete wait until release lets it go on, as a
// slow router does; entered tells of each delete as it starts waiting.
// release also ends the hold for deletes that come after it.
func (r *Router) Hold() (entered <-chan watcher.Key, release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hold, ch := make(chan struct{}), make(chan watcher.Key, 16)
	r.hold, r.entered = hold, ch
	return ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		close(hold)
		r.hold, r.entered = nil, nil
	}
}
