package approvals

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

// What the tracker cannot load or save is logged, not dropped: a record it
// cannot read starts tracking afresh, and a closed database fails the save.
func TestPresenceTrackerLogsStorageErrors(t *testing.T) {
	db, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "doorman.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *storage.Tx) error { return tx.SetMeta(metaPresence, "not a presence record") }); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := NewPresenceTracker(db, func(context.Context, string) bool { return true }, func() time.Time { return now }, logger)
	if !strings.Contains(logs.String(), "presence: loading") {
		t.Errorf("an unreadable record was not logged: %q", logs.String())
	}
	if !p.state.Since.Equal(now) || p.state.LastSeen == nil {
		t.Errorf("after an unreadable record the state is %+v, want a fresh start at %s", p.state, now)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	p.check(context.Background(), []string{"192.168.77.21"})
	if !strings.Contains(logs.String(), "presence: saving") {
		t.Errorf("a failed save was not logged: %q", logs.String())
	}
}
