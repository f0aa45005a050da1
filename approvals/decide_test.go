package approvals

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// decideAsync presses a button in the background, as the bot does.
func (f *fixture) decideAsync(id uint64, d Decision) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := f.engine.Decide(context.Background(), id, d, alice)
		done <- err
	}()
	return done
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// A slow router holds up neither listings nor other presses, and a second
// press about the same share does not reach the router.
func TestDecideHoldsNoLockAcrossTheRouter(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	cam := share(554, "192.168.77.30", "IPCam RTSP")
	web := share(8080, "192.168.77.21", "web")
	ch := f.list(true, cam, web)
	entered, release := f.router.Hold()
	first := f.decideAsync(ch.Alerts[0], Block)
	wait(t, entered, "the delete")
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		f.list(true, cam, web)
	}()
	wait(t, listed, "a listing while the router deletes")
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice); !errors.Is(err, ErrInProgress) {
		t.Errorf("second Block while the first is under way: %v, want ErrInProgress", err)
	}
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[1], Allow, alice); err != nil {
		t.Errorf("Allow of another share while the router deletes: %v", err)
	}
	release()
	if err := wait(t, first, "the Block"); err != nil {
		t.Fatal(err)
	}
	if n := f.router.Count(); n != 1 {
		t.Errorf("%d deletes, want 1", n)
	}
	if a := f.alert(ch.Alerts[0]); a.State != storage.AlertBlocked {
		t.Errorf("alert is %s, want blocked", a.State)
	}
}

// A listing that comes while the router deletes and shows another device
// on the port wins: the question it superseded is not recorded as blocked,
// and the other device's share is not taken as gone.
func TestListingDuringBlockIsCheckedAgain(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	a := share(8080, "192.168.77.21", "A")
	ch := f.list(true, a)
	entered, release := f.router.Hold()
	done := f.decideAsync(ch.Alerts[0], Block)
	wait(t, entered, "the delete")
	b := share(8080, "192.168.77.22", "B")
	if chB := f.list(true, b); len(chB.Alerts) != 1 {
		t.Fatalf("B was not asked about: %+v", chB)
	}
	release()
	if err := wait(t, done, "the Block"); !errors.Is(err, ErrDecided) {
		t.Errorf("Block of a superseded question: %v, want ErrDecided", err)
	}
	if rs := f.rules(); len(rs) != 0 {
		t.Errorf("a superseded Block made rules: %+v", rs)
	}
	var s storage.Share
	f.db.View(func(tx *storage.Tx) (err error) { s, _, err = tx.Share(storage.ShareKey(b.Key())); return err })
	if s.Gone() || s.Mapping != b {
		t.Errorf("B's share = %+v, want it open", s)
	}
}

// A sibling answered with another alert shows no note left from a Block
// the router refused on it.
func TestSiblingShowsNoStaleRefusal(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	one := share(8000, "192.168.77.21", "NAT-PMP 8000 tcp")
	two := one
	two.ExternalPort, two.Description = 8002, "NAT-PMP 8002 tcp"
	ch := f.list(true, one, two)
	f.router.Err = &watcher.DeleteError{Err: fmt.Errorf("%w: %w", watcher.ErrDeleteRefused, &watcher.UPnPError{Code: 606})}
	if a, _ := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice); a.Note.Kind != storage.NoteRefused {
		t.Fatalf("refused Block left note %+v", a.Note)
	}
	f.router.Err = nil
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[1], Allow, alice); err != nil {
		t.Fatal(err)
	}
	if a := f.alert(ch.Alerts[0]); a.State != storage.AlertAllowed || !a.Note.IsZero() {
		t.Errorf("sibling = %s with note %+v, want allowed without a note", a.State, a.Note)
	}
}
