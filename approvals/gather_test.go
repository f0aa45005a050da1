package approvals

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/approvals/approvalstest"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/storage/storagetest"
)

// A held question whose queueing failed (a full disk, for a moment) is
// queued by a later try, not left until the next new question or start.
func TestHeldQuestionIsRetriedAfterAFailedWrite(t *testing.T) {
	db := storagetest.Open(t)
	// The gather timer goes by the real clock.
	e, err := New(Config{DB: db, Router: &approvalstest.Router{}, ChatID: 42, Gather: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var fails atomic.Int32
	fails.Store(1)
	e.sendHeldUpdate = func(fn func(tx *storage.Tx) error) error {
		if fails.Add(-1) >= 0 {
			return errors.New("disk full")
		}
		return db.Update(fn)
	}
	if _, err := e.HandleListing(t.Context(), Listing{Router: testRouter, Service: testService, Complete: true}); err != nil {
		t.Fatal(err)
	}
	l := Listing{Router: testRouter, Service: testService, Complete: true}
	l.Mappings = append(l.Mappings, share(8080, "192.168.77.21", "web"))
	if _, err := e.HandleListing(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	queued := func() int {
		n := 0
		db.View(func(tx *storage.Tx) error {
			items, err := tx.Outbox()
			for _, it := range items {
				if it.Kind == storage.OutboxAlert {
					n++
				}
			}
			return err
		})
		return n
	}
	for range 100 {
		if queued() > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fails.Load() >= 0 {
		t.Fatal("the write did not fail")
	}
	if n := queued(); n != 1 {
		t.Errorf("%d questions queued after a failed write, want the held one", n)
	}
}
