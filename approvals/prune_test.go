package approvals

import (
	"context"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

// Months of history: thousands of answered and superseded alerts and old
// digests. A prune removes what nothing needs, in bounded transactions, and
// keeps what /list, presses, the outbox and the metrics read.
func TestPruneBoundsHistory(t *testing.T) {
	f := newFixture(t)
	old := f.now.Add(-DefaultKeepHistory - 24*time.Hour)
	young := f.now.Add(-24 * time.Hour)
	const history = 3 * pruneBatch
	var keep []uint64
	put := func(a storage.Alert) uint64 {
		t.Helper()
		if err := f.db.Update(func(tx *storage.Tx) error { return tx.PutAlert(&a) }); err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	err := f.db.Update(func(tx *storage.Tx) error {
		for i := range history {
			state := storage.AlertAllowed
			if i%3 == 0 {
				state = storage.AlertSuperseded
			}
			if i%5 == 0 {
				state = storage.AlertBlocked
			}
			a := storage.Alert{Kind: storage.AlertNew, Share: storage.Share{Mapping: share(uint16(1000+i%500), "192.168.77.21", "x")},
				State: state, CreatedAt: old, DecidedAt: old, MessageID: i + 1, ChatID: 42}
			if err := tx.PutAlert(&a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	keep = append(keep,
		put(storage.Alert{State: storage.AlertPending, CreatedAt: old, ChatID: 42}),
		put(storage.Alert{State: storage.AlertAllowed, CreatedAt: young, DecidedAt: young, ChatID: 42}),
	)
	// A share's alert: /list reads it.
	referenced := put(storage.Alert{State: storage.AlertAllowed, CreatedAt: old, DecidedAt: old, Share: storage.Share{Mapping: share(7000, "192.168.77.30", "nas")}})
	keep = append(keep, referenced)
	s := storage.Share{Mapping: share(7000, "192.168.77.30", "nas"), FirstSeen: old, LastSeen: f.now, AlertID: referenced}
	// A batch with one question still open: the message is kept whole.
	leader := put(storage.Alert{State: storage.AlertAllowed, CreatedAt: old, DecidedAt: old})
	member := put(storage.Alert{State: storage.AlertPending, CreatedAt: old, Batch: leader})
	keep = append(keep, leader, member)
	// An alert a queued edit is about.
	queued := put(storage.Alert{State: storage.AlertBlocked, CreatedAt: old, DecidedAt: old, MessageID: 9})
	keep = append(keep, queued)
	var digests []uint64
	err = f.db.Update(func(tx *storage.Tx) error {
		if err := tx.PutShare(s); err != nil {
			return err
		}
		if err := tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxEdit, AlertID: queued}); err != nil {
			return err
		}
		for range 6 {
			d := storage.Digest{CreatedAt: old, ChatID: 42}
			if err := tx.PutDigest(&d); err != nil {
				return err
			}
			digests = append(digests, d.ID)
		}
		return tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxDigestEdit, DigestID: digests[0]})
	})
	if err != nil {
		t.Fatal(err)
	}
	before := f.metricsTotals()

	start := time.Now()
	p, err := f.engine.Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pruned %+v in %s", p, time.Since(start))
	if p.Alerts != history || p.Digests != 3 {
		t.Errorf("pruned %+v, want %d alerts and 3 digests", p, history)
	}
	for _, id := range keep {
		if _, err := f.engine.Alert(context.Background(), id); err != nil {
			t.Errorf("alert %d was pruned: %v", id, err)
		}
	}
	for _, id := range []uint64{digests[0], digests[4], digests[5]} {
		if _, err := f.engine.Digest(context.Background(), id); err != nil {
			t.Errorf("digest %d was pruned: %v", id, err)
		}
	}
	var left int
	f.db.View(func(tx *storage.Tx) error { _, _, left, _ = tx.Count(); return nil })
	if left != len(keep) {
		t.Errorf("%d alerts left, want %d", left, len(keep))
	}
	if after := f.metricsTotals(); after != before {
		t.Errorf("sent and decided before the prune %+v, after %+v", before, after)
	}
	if p, err := f.engine.Prune(context.Background()); err != nil || p != (Pruned{}) {
		t.Errorf("second prune: %+v, %v", p, err)
	}
}

type totals struct{ sent, allowed, blocked int }

// metricsTotals counts as the metrics do: the alerts there, plus the
// pruned totals.
func (f *fixture) metricsTotals() totals {
	var t totals
	f.db.View(func(tx *storage.Tx) error {
		all, _ := tx.Alerts()
		for _, a := range all {
			if a.MessageID != 0 {
				t.sent++
			}
			switch a.State {
			case storage.AlertAllowed:
				t.allowed++
			case storage.AlertBlocked:
				t.blocked++
			}
		}
		p, _ := tx.PrunedAlerts()
		t.sent += p.Sent
		t.allowed += p.Decisions[storage.AlertAllowed]
		t.blocked += p.Decisions[storage.AlertBlocked]
		return nil
	})
	return t
}

// A listing prunes, at most once an hour.
func TestListingPrunes(t *testing.T) {
	f := newFixture(t)
	old := f.now.Add(-DefaultKeepHistory - time.Hour)
	add := func() {
		if err := f.db.Update(func(tx *storage.Tx) error {
			return tx.PutAlert(&storage.Alert{State: storage.AlertSuperseded, CreatedAt: old})
		}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		var n int
		f.db.View(func(tx *storage.Tx) error { _, _, n, _ = tx.Count(); return nil })
		return n
	}
	add()
	f.list(true)
	if n := count(); n != 0 {
		t.Fatalf("%d alerts after the first listing", n)
	}
	add()
	f.now = f.now.Add(time.Minute)
	f.list(true)
	if n := count(); n != 1 {
		t.Errorf("%d alerts a minute later, want the prune to wait", n)
	}
	f.now = f.now.Add(pruneEvery)
	f.list(true)
	if n := count(); n != 0 {
		t.Errorf("%d alerts an hour later", n)
	}
}

// An answer reads the open questions, not the history: with thousands of
// answered alerts stored, Decide still answers its siblings and nothing
// else.
func TestDecideReadsOpenQuestionsOnly(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	err := f.db.Update(func(tx *storage.Tx) error {
		for i := range 5000 {
			a := storage.Alert{State: storage.AlertAllowed, CreatedAt: f.now, Share: storage.Share{Mapping: share(uint16(2000+i%100), "192.168.77.21", "web")}}
			if err := tx.PutAlert(&a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	twin := share(8081, "192.168.77.21", "web")
	twin.InternalPort = 8080
	ch := f.list(true, share(8080, "192.168.77.21", "web"), twin)
	var pending []storage.Alert
	f.db.View(func(tx *storage.Tx) (err error) { pending, err = tx.PendingAlerts(); return err })
	if len(pending) != len(ch.Alerts) {
		t.Fatalf("%d open questions indexed, want %d", len(pending), len(ch.Alerts))
	}
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], Allow, storage.User{ID: 1}); err != nil {
		t.Fatal(err)
	}
	f.db.View(func(tx *storage.Tx) (err error) { pending, err = tx.PendingAlerts(); return err })
	if len(pending) != 0 {
		t.Errorf("%d questions open after the answer, want none", len(pending))
	}
}
