package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/doorman-upnp/doorman/storage"
)

// A Go panic that reaches the top of a goroutine exits with status 2, which
// the systemd unit keeps for settings doorman cannot use and does not
// restart. So the goroutines doorman starts for its parts, and the handling
// of each listing, end a panic themselves: a part's panic stops doorman with
// exit status 1 (systemd restarts it), a listing's is logged and the next
// listing is handled as usual. Panics in bbolt on a damaged file never get
// this far: storage turns them into ErrDamaged. What is left is a panic in
// a goroutine a package starts for itself (the watcher's per-router loops,
// identify's lookups) outside a listing's handling: Go gives no way to end
// those from here, so crashOnPanic makes them end doorman with SIGABRT
// instead of status 2.

// crashOnPanic makes a panic that nothing recovered abort the process
// (SIGABRT, as GOTRACEBACK=crash does) instead of exiting with status 2:
// systemd restarts a process killed by a signal, and status 2 stays for
// settings doorman cannot use. The stack still goes to standard error. A
// GOTRACEBACK the owner set wins.
func crashOnPanic() {
	if os.Getenv("GOTRACEBACK") == "" {
		debug.SetTraceback("crash")
	}
}

// recoverPart runs part and returns its panic as an error, with the stack
// in the log.
func recoverPart(logger *slog.Logger, part func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("a bug in doorman stopped it; please report it with this log", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = fmt.Errorf("a bug in doorman: %v", r)
			}
		}()
		return part(ctx)
	}
}

// logPanic, deferred, logs a panic and ends it, for work whose failure
// should not stop doorman.
func logPanic(logger *slog.Logger, what string) {
	if r := recover(); r != nil {
		logger.Error("a bug in doorman while "+what+"; please report it with this log", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

// quietUnwritable is a log handler that lowers to debug the records about a
// failure to save to the database. storage logs the start and end of such
// an episode once, with the reason; without this every listing, delivery
// and button press would add a line of its own while the disk is full.
type quietUnwritable struct {
	inner slog.Handler
	bound bool // an attribute given with With already is such an error
}

func newQuietUnwritable(h slog.Handler) slog.Handler { return &quietUnwritable{inner: h} }

func (h *quietUnwritable) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *quietUnwritable) Handle(ctx context.Context, r slog.Record) error {
	quiet := h.bound
	r.Attrs(func(a slog.Attr) bool {
		quiet = quiet || isUnwritable(a)
		return !quiet
	})
	if quiet && r.Level > slog.LevelDebug {
		if !h.inner.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.inner.Handle(ctx, r)
}

func (h *quietUnwritable) WithAttrs(attrs []slog.Attr) slog.Handler {
	bound := h.bound
	for _, a := range attrs {
		bound = bound || isUnwritable(a)
	}
	return &quietUnwritable{inner: h.inner.WithAttrs(attrs), bound: bound}
}

func (h *quietUnwritable) WithGroup(name string) slog.Handler {
	return &quietUnwritable{inner: h.inner.WithGroup(name), bound: h.bound}
}

func isUnwritable(a slog.Attr) bool {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindAny:
		err, ok := v.Any().(error)
		return ok && errors.Is(err, storage.ErrUnwritable)
	case slog.KindGroup:
		for _, g := range v.Group() {
			if isUnwritable(g) {
				return true
			}
		}
	}
	return false
}
