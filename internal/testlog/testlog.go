// Package testlog gives tests a *slog.Logger that writes to the test's own
// output (testing.TB.Output), so a failing test shows what the code under
// test logged, next to the failure, and a passing one stays quiet.
package testlog

import (
	"io"
	"log/slog"
	"sync"
	"testing"
)

// New returns a logger writing text records at level and above to t's
// output. Records logged after t has finished are dropped: goroutines that
// outlive their test by design (a lookup, a retry) must not make the
// testing package panic.
func New(t testing.TB, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: level}))
}

// Writer returns t.Output() guarded the same way as New's.
func Writer(t testing.TB) io.Writer {
	w := &writer{out: t.Output()}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

type writer struct {
	mu   sync.Mutex
	out  io.Writer
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.out.Write(p)
}
