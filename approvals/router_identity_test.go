package approvals

import (
	"context"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// TestRouterIdentityKeepsShares: doorman before router identities stored
// shares and questions under the description URL (testRouter). After an
// upgrade, with the router's description on another port even, the
// listing under the router's identity finds them: nothing is asked again,
// and the pending question's Block closes the share on the router.
func TestRouterIdentityKeepsShares(t *testing.T) {
	f := newFixture(t)
	cam := share(8080, "192.168.77.21", "cam")
	f.list(true)
	ch := f.list(true, cam)
	if len(ch.Alerts) != 1 {
		t.Fatalf("first question: %+v", ch)
	}
	asked := ch.Alerts[0]
	queued := len(f.outbox())

	const udn = "uuid:00000000-0000-0000-0000-00000000abcd"
	id := watcher.RouterID(udn, "192.168.77.1")
	restarted, err := New(Config{DB: f.db, Router: f.router, ChatID: 42, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	moved := cam
	moved.Router = id
	ch, err = restarted.HandleListing(context.Background(), Listing{Router: id, RouterUDNs: []string{udn}, Service: testService, Mappings: []watcher.Mapping{moved}, Complete: true})
	if err != nil {
		t.Fatal(err)
	}
	if ch.New != 0 || ch.Changed != 0 || len(ch.Alerts) != 0 || len(f.outbox()) != queued {
		t.Errorf("the listing under the router's identity asked again: %+v, outbox %d -> %d", ch, queued, len(f.outbox()))
	}
	a, err := restarted.Decide(context.Background(), asked, Block, alice)
	if err != nil || a.State != storage.AlertBlocked {
		t.Fatalf("Block on the old question = %+v, %v", a, err)
	}
	if d := f.router.Deletes(); len(d) != 1 || d[0].Router != id || d[0].ExternalPort != 8080 {
		t.Errorf("deletes %+v, want 8080 on %s", d, id)
	}
}
