package approvals

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/approvals/approvalstest"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/storage/storagetest"
	"github.com/doorman-upnp/doorman/watcher"
)

const (
	testRouter  = "http://192.168.77.1:5000/rootDesc.xml"
	testService = "urn:schemas-upnp-org:service:WANIPConnection:2"
)

type fixture struct {
	t      *testing.T
	db     *storage.DB
	router *approvalstest.Router
	engine *Engine
	now    time.Time
	wakes  atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := storagetest.Open(t)
	f := &fixture{t: t, db: db, router: &approvalstest.Router{}, now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	var err error
	f.engine, err = New(Config{DB: db, Router: f.router, ChatID: 42, Wake: func() { f.wakes.Add(1) }, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func share(port uint16, client, desc string) watcher.Mapping {
	return watcher.Mapping{
		Router: testRouter, Service: testService, Protocol: "TCP", ExternalPort: port,
		InternalClient: client, InternalPort: port, Enabled: true, Description: desc,
		Origin: watcher.OriginFromDescription(desc),
	}
}

func (f *fixture) list(complete bool, ms ...watcher.Mapping) Changes {
	f.t.Helper()
	ch, err := f.engine.HandleListing(context.Background(), Listing{Router: testRouter, Service: testService, Mappings: ms, Complete: complete})
	if err != nil {
		f.t.Fatal(err)
	}
	return ch
}

func (f *fixture) outbox() []storage.OutboxItem {
	f.t.Helper()
	var items []storage.OutboxItem
	if err := f.db.View(func(tx *storage.Tx) (err error) { items, err = tx.Outbox(); return err }); err != nil {
		f.t.Fatal(err)
	}
	return items
}

func (f *fixture) clearOutbox() {
	f.db.Update(func(tx *storage.Tx) error {
		items, _ := tx.Outbox()
		for _, it := range items {
			tx.RemoveOutbox(it.Seq)
		}
		return nil
	})
}

func (f *fixture) alert(id uint64) storage.Alert {
	f.t.Helper()
	var a storage.Alert
	if err := f.db.View(func(tx *storage.Tx) (err error) { a, err = tx.Alert(id); return err }); err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) rules() []storage.Rule {
	var rs []storage.Rule
	f.db.View(func(tx *storage.Tx) (err error) { rs, err = tx.Rules(); return err })
	return rs
}

var alice = storage.User{ID: 7, Name: "Alice (@alice)"}

func TestFirstListingIsAskedAboutOnce(t *testing.T) {
	f := newFixture(t)
	var ms []watcher.Mapping
	for i := range BatchSize + 3 {
		ms = append(ms, share(uint16(8000+i), "192.168.77.21", fmt.Sprintf("app %d", i)))
	}
	ch := f.list(true, ms...)
	if len(ch.Alerts) != len(ms) || ch.New != len(ms) {
		t.Fatalf("changes = %+v, want %d alerts", ch, len(ms))
	}
	items := f.outbox()
	if len(items) != 2 {
		t.Fatalf("outbox has %d items, want 2 batch messages: %+v", len(items), items)
	}
	for _, it := range items {
		if it.Kind != storage.OutboxAlert || it.ChatID != 42 {
			t.Errorf("item %+v", it)
		}
	}
	var first []storage.Alert
	f.db.View(func(tx *storage.Tx) (err error) { first, err = tx.MessageAlerts(items[0].AlertID); return err })
	if len(first) != BatchSize || first[0].Kind != storage.AlertExisting {
		t.Errorf("first batch has %d alerts (kind %s), want %d", len(first), first[0].Kind, BatchSize)
	}
	f.clearOutbox()
	if ch := f.list(true, ms...); len(ch.Alerts) != 0 || ch.New != 0 {
		t.Errorf("second listing: %+v", ch)
	}
	if n := len(f.outbox()); n != 0 {
		t.Errorf("second listing queued %d items", n)
	}
}

func TestEmptyRouterThenNewShare(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	ch := f.list(true, share(8080, "192.168.77.21", "web"))
	if len(ch.Alerts) != 1 {
		t.Fatalf("changes = %+v", ch)
	}
	a := f.alert(ch.Alerts[0])
	if a.Kind != storage.AlertNew || a.Batch != a.ID || a.State != storage.AlertPending || a.ChatID != 42 {
		t.Errorf("alert = %+v", a)
	}
	if f.wakes.Load() == 0 {
		t.Error("the outbox was not woken")
	}
}

func TestRouterRestartDoesNotAskAgain(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	web := share(8080, "192.168.77.21", "web")
	f.list(true, web)
	f.clearOutbox()
	// The router restarted: the table is empty, then the device maps again.
	if ch := f.list(true); ch.Gone != 1 {
		t.Errorf("after restart: %+v", ch)
	}
	ch := f.list(true, web)
	if ch.Returned != 1 || len(ch.Alerts) != 0 {
		t.Errorf("share back: %+v", ch)
	}
	if n := len(f.outbox()); n != 0 {
		t.Errorf("%d items queued for a returning share", n)
	}
}

func TestIncompleteListingKeepsShares(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	f.list(true, share(8080, "192.168.77.21", "web"), share(22, "192.168.77.22", "ssh"))
	if ch := f.list(false, share(8080, "192.168.77.21", "web")); ch.Gone != 0 {
		t.Errorf("an incomplete listing marked %d shares gone", ch.Gone)
	}
}

func TestChangedShareSupersedes(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	ch := f.list(true, share(8080, "192.168.77.21", "web"))
	f.setSent(ch.Alerts[0])
	f.clearOutbox()
	moved := share(8080, "192.168.77.23", "web")
	ch2 := f.list(true, moved)
	if ch2.Changed != 1 || len(ch2.Alerts) != 1 {
		t.Fatalf("changes = %+v", ch2)
	}
	if old := f.alert(ch.Alerts[0]); old.State != storage.AlertSuperseded {
		t.Errorf("old alert state %s", old.State)
	}
	a := f.alert(ch2.Alerts[0])
	if a.Kind != storage.AlertChanged || a.Previous == nil || a.Previous.InternalClient != "192.168.77.21" {
		t.Errorf("new alert = %+v", a)
	}
	items := f.outbox()
	if len(items) != 2 || items[0].Kind != storage.OutboxEdit || items[1].Kind != storage.OutboxAlert {
		t.Errorf("outbox = %+v, want an edit of the old alert and the new alert", items)
	}
}

// setSent records that Telegram confirmed the alert's message.
func (f *fixture) setSent(id uint64) {
	f.db.Update(func(tx *storage.Tx) error {
		a, err := tx.Alert(id)
		if err != nil {
			return err
		}
		a.MessageID = int(id) + 100
		return tx.PutAlert(&a)
	})
}

func TestAllowTrustsTheService(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	pmp := share(8000, "192.168.77.21", "NAT-PMP 8000 tcp")
	ch := f.list(true, pmp)
	a, err := f.engine.Decide(context.Background(), ch.Alerts[0], Allow, alice)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != storage.AlertAllowed || a.DecidedBy != alice || !a.DecidedAt.Equal(f.now) {
		t.Errorf("alert = %+v", a)
	}
	if rs := f.rules(); len(rs) != 1 || rs[0].Kind != storage.RuleTrust {
		t.Fatalf("rules = %+v", rs)
	}
	f.clearOutbox()
	// The same app on the same device, another external port: silent.
	again := pmp
	again.ExternalPort, again.Description = 8001, "NAT-PMP 8001 tcp"
	if ch := f.list(true, pmp, again); len(ch.Alerts) != 0 {
		t.Errorf("trusted service alerted: %+v", ch)
	}
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice); !errors.Is(err, ErrDecided) {
		t.Errorf("second decision error = %v, want ErrDecided", err)
	}
	if _, err := f.engine.Decide(context.Background(), 999, Allow, alice); !errors.Is(err, ErrUnknownAlert) {
		t.Errorf("unknown alert error = %v", err)
	}
	if f.router.Count() != 0 {
		t.Error("Allow deleted something")
	}
}

func TestBlockDeletesAndKeepsDeleting(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	cam := share(554, "192.168.77.30", "IPCam RTSP")
	ch := f.list(true, cam)
	a, err := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != storage.AlertBlocked || f.router.Count() != 1 || f.router.Deletes()[0] != cam.Key() {
		t.Fatalf("alert %+v, deletes %+v", a, f.router.Deletes())
	}
	f.clearOutbox()
	// The camera opens it again: closed at once, one notice.
	f.now = f.now.Add(time.Minute)
	if ch := f.list(true, cam); ch.Enforced != 1 || len(ch.Alerts) != 0 {
		t.Errorf("reopen: %+v", ch)
	}
	if f.router.Count() != 2 {
		t.Errorf("deletes = %d, want 2", f.router.Count())
	}
	items := f.outbox()
	if len(items) != 1 || items[0].Kind != storage.OutboxNotice || items[0].Notice == nil || items[0].Notice.Kind != storage.NoticeClosedAgain || items[0].Notice.Mapping != cam {
		t.Fatalf("outbox = %+v", items)
	}
	f.clearOutbox()
	// Again within the notice interval: closed, no notice.
	f.list(true)
	f.now = f.now.Add(time.Minute)
	f.list(true, cam)
	if f.router.Count() != 3 || len(f.outbox()) != 0 {
		t.Errorf("deletes %d, outbox %+v", f.router.Count(), f.outbox())
	}
	// After the interval the next notice counts what was not reported.
	f.list(true)
	f.now = f.now.Add(DefaultNoticeInterval)
	f.list(true, cam)
	items = f.outbox()
	if len(items) != 1 || items[0].Notice == nil || items[0].Notice.Unreported != 1 {
		t.Errorf("outbox = %+v", items)
	}
}

func TestBlockRefusedByRouter(t *testing.T) {
	for _, code := range []int{606, 714} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			f := newFixture(t)
			f.list(true)
			ch := f.list(true, share(3389, "192.168.77.40", "RDP"))
			f.router.Err = &watcher.DeleteError{Err: fmt.Errorf("%w: %w", watcher.ErrDeleteRefused, &watcher.UPnPError{Action: "DeletePortMapping", Code: code, Description: "Action not authorized"})}
			a, err := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice)
			var refused *RefusedError
			if !errors.As(err, &refused) || watcher.UPnPErrorCode(err) != code {
				t.Fatalf("error = %v, want a RefusedError with code %d", err, code)
			}
			if a.State != storage.AlertPending || a.Note != (storage.Note{Kind: storage.NoteRefused, UPnPCode: code}) {
				t.Errorf("alert = %+v", a)
			}
			if rs := f.rules(); len(rs) != 0 {
				t.Errorf("a refused block left rules: %+v", rs)
			}
			// The owner fixed the router and presses again.
			f.router.Err = nil
			if a, err := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice); err != nil || a.State != storage.AlertBlocked || !a.Note.IsZero() {
				t.Errorf("retry: %+v, %v", a, err)
			}
		})
	}
}

func TestBlockWithRouterDown(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	ch := f.list(true, share(8080, "192.168.77.21", "web"))
	f.router.Err = context.DeadlineExceeded
	a, err := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v", err)
	}
	if a.State != storage.AlertPending || a.Note.Kind != storage.NoteUnreachable || !strings.Contains(a.Note.Error, "deadline exceeded") {
		t.Errorf("alert = %+v", a)
	}
}

func TestDescriptionsAreEscapedInNotices(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	evil := share(8080, "192.168.77.21", `<a href="http://evil">x</a>&`)
	ch := f.list(true, evil)
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice); err != nil {
		t.Fatal(err)
	}
	f.clearOutbox()
	f.list(true, evil)
	items := f.outbox()
	// The notice carries the description as the device wrote it; bot
	// escapes it when it words the notice (TestNoticesAreWorded).
	if len(items) != 1 || items[0].Notice == nil || items[0].Notice.Mapping.Description != evil.Description || items[0].Text != "" {
		t.Errorf("notice = %+v", items)
	}
}

func TestRefusedEnforcementBacksOff(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	m := share(3389, "192.168.77.40", "RDP")
	ch := f.list(true, m)
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice); err != nil {
		t.Fatal(err)
	}
	f.router.Err = &watcher.DeleteError{Err: fmt.Errorf("%w: %w", watcher.ErrDeleteRefused, &watcher.UPnPError{Code: 606})}
	for range 20 {
		f.list(true, m)
	}
	if n := f.router.Count(); n != 2 {
		t.Errorf("%d deletes, want the Block and one refused retry", n)
	}
	f.now = f.now.Add(DefaultNoticeInterval)
	f.list(true, m)
	if n := f.router.Count(); n != 3 {
		t.Errorf("%d deletes after the interval, want 3", n)
	}
}

func TestBlockOnOldAlertSparesAnotherDevice(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	a := share(8080, "192.168.77.21", "A")
	ch := f.list(true, a)
	f.list(true) // A closes its share
	b := share(8080, "192.168.77.22", "B")
	chB := f.list(true, b)
	if len(chB.Alerts) != 1 {
		t.Fatalf("B was not asked about: %+v", chB)
	}
	if old := f.alert(ch.Alerts[0]); old.State != storage.AlertSuperseded {
		t.Errorf("A's alert is %s, want superseded", old.State)
	}
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice); !errors.Is(err, ErrDecided) {
		t.Errorf("Block on A's old alert: %v", err)
	}
	if f.router.Count() != 0 {
		t.Errorf("B's share was deleted: %+v", f.router.Deletes())
	}
}

func TestBlockOfAShareAlreadyGone(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	a := share(8080, "192.168.77.21", "A")
	ch := f.list(true, a)
	f.list(true)
	if got, err := f.engine.Decide(context.Background(), ch.Alerts[0], Block, alice); err != nil || got.State != storage.AlertBlocked {
		t.Fatalf("%+v %v", got, err)
	}
	if f.router.Count() != 0 {
		t.Error("a gone share was deleted")
	}
	f.list(true, a)
	if f.router.Count() != 1 {
		t.Error("the block rule did not close the share when it came back")
	}
}

func TestForgottenRuleAsksAgain(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	m := share(8080, "192.168.77.21", "web")
	ch := f.list(true, m)
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], Allow, alice); err != nil {
		t.Fatal(err)
	}
	rs := f.rules()
	if _, err := f.engine.ForgetRule(context.Background(), rs[0].ID); err != nil {
		t.Fatal(err)
	}
	f.list(true)
	if ch := f.list(true, m); len(ch.Alerts) != 1 {
		t.Errorf("after forgetting the rule: %+v, want a new question", ch)
	}
}

func TestPartialFirstListingStillBatches(t *testing.T) {
	f := newFixture(t)
	ms := []watcher.Mapping{share(1, "192.168.77.21", "a"), share(2, "192.168.77.21", "b"), share(3, "192.168.77.21", "c")}
	f.list(false, ms[0])
	f.list(true, ms...)
	var alone int
	for _, it := range f.outbox() {
		var a storage.Alert
		f.db.View(func(tx *storage.Tx) (err error) { a, err = tx.Alert(it.AlertID); return err })
		if a.Batch == 0 {
			alone++
		}
	}
	if alone != 0 {
		t.Errorf("%d single alerts after a partial first listing, want batches only", alone)
	}
}

func TestDecisionCoversSiblings(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	one := share(8000, "192.168.77.21", "NAT-PMP 8000 tcp")
	one.InternalPort = 8001
	two := one
	two.ExternalPort, two.Description = 8002, "NAT-PMP 8002 tcp"
	ch := f.list(true, one, two)
	if len(ch.Alerts) != 2 {
		t.Fatalf("%+v", ch)
	}
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], Allow, alice); err != nil {
		t.Fatal(err)
	}
	if a := f.alert(ch.Alerts[1]); a.State != storage.AlertAllowed {
		t.Errorf("sibling alert is %s", a.State)
	}
}

func TestUnpairedRecordsAndReportsLater(t *testing.T) {
	f := newFixture(t)
	f.engine.SetChat(0)
	var events []Event
	f.engine.observe = func(e Event) { events = append(events, e) }
	f.list(true, share(80, "192.168.77.21", "web"))
	f.list(true, share(80, "192.168.77.21", "web"), share(81, "192.168.77.21", "web2"))
	if n := len(f.outbox()); n != 0 {
		t.Fatalf("%d items queued without a chat", n)
	}
	if len(events) != 2 || events[0].Kind != EventOpen || events[1].Kind != EventNew {
		t.Errorf("events = %+v", events)
	}
	f.engine.SetChat(77)
	n, err := f.engine.ReportUnasked(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("ReportUnasked = %d, %v", n, err)
	}
	items := f.outbox()
	if len(items) != 1 || items[0].ChatID != 77 {
		t.Errorf("outbox = %+v", items)
	}
	if n, _ := f.engine.ReportUnasked(context.Background()); n != 0 {
		t.Errorf("reported %d shares twice", n)
	}
}

func TestAllowDeviceTrustsEverythingItOpens(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	console := share(3074, "192.168.77.30", "Xbox")
	ch := f.list(true, console)
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], AllowDevice, alice); err != nil {
		t.Fatal(err)
	}
	other := share(3075, "192.168.77.30", "another game")
	stranger := share(3076, "192.168.77.31", "another game")
	ch = f.list(true, console, other, stranger)
	if len(ch.Alerts) != 1 {
		t.Fatalf("alerts = %+v, want one for the other device only", ch.Alerts)
	}
	if a := f.alert(ch.Alerts[0]); a.Share.Mapping.InternalClient != "192.168.77.31" {
		t.Errorf("asked about %s", a.Share.Mapping.InternalClient)
	}
	// A block rule for one service of the trusted device still wins.
	rdp := share(3389, "192.168.77.30", "RDP")
	f.engine.mu.Lock()
	f.db.Update(func(tx *storage.Tx) error {
		return f.engine.putRule(tx, storage.RuleBlock, storage.ScopeService, rdp, alice, f.now)
	})
	f.engine.mu.Unlock()
	if ch := f.list(true, console, other, stranger, rdp); ch.Enforced != 1 {
		t.Errorf("the blocked service of a trusted device was not closed: %+v", ch)
	}
}

func TestRulesFollowTheMAC(t *testing.T) {
	f := newFixture(t)
	macs := map[string]string{"192.168.77.21": "00:11:32:aa:bb:cc"}
	f.engine.macOf = func(ip string) string { return macs[ip] }
	f.list(true)
	m := share(32400, "192.168.77.21", "Plex Media Server")
	ch := f.list(true, m)
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], Allow, alice); err != nil {
		t.Fatal(err)
	}
	if rs := f.rules(); len(rs) != 1 || rs[0].MAC != "00:11:32:aa:bb:cc" {
		t.Fatalf("rules = %+v", rs)
	}
	// DHCP gives the NAS another address.
	delete(macs, "192.168.77.21")
	macs["192.168.77.55"] = "00:11:32:aa:bb:cc"
	moved := m
	moved.InternalClient = "192.168.77.55"
	f.list(true)
	if ch := f.list(true, moved); len(ch.Alerts) != 0 {
		t.Errorf("the trusted service was asked about at its new address: %+v", ch)
	}
	// Another device at the old address is not trusted.
	impostor := m
	impostor.ExternalPort = 32401
	macs["192.168.77.21"] = "de:ad:be:ef:00:01"
	if ch := f.list(true, moved, impostor); len(ch.Alerts) != 1 {
		t.Errorf("another device at the old address was not asked about: %+v", ch)
	}
}

func TestPresenceTracker(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	present := map[string]bool{"192.168.77.21": true}
	seen := func(_ context.Context, ip string) bool { mu.Lock(); defer mu.Unlock(); return present[ip] }
	p := NewPresenceTracker(f.db, seen, func() time.Time { return f.now }, nil)
	sample := func(ips ...string) {
		p.Sample(context.Background(), ips)
		for p.running.Load() {
			time.Sleep(time.Millisecond)
		}
	}
	sample("192.168.77.21", "192.168.77.22")
	if _, ok := p.LastSeen("192.168.77.21"); ok {
		t.Error("the tracker spoke before it had watched for a day")
	}
	start := f.now
	f.now = f.now.Add(30 * time.Hour)
	mu.Lock()
	present["192.168.77.21"] = false
	mu.Unlock()
	sample("192.168.77.21")
	if seen, ok := p.LastSeen("192.168.77.21"); !ok || !seen.Equal(start) {
		t.Errorf("LastSeen = %s %v, want %s", seen, ok, start)
	}
	if _, ok := p.LastSeen("192.168.77.22"); ok {
		t.Error("a device never seen is called away")
	}
	// It remembers across a restart.
	again := NewPresenceTracker(f.db, seen, func() time.Time { return f.now }, nil)
	if seen, ok := again.LastSeen("192.168.77.21"); !ok || !seen.Equal(start) {
		t.Errorf("after a restart: %s %v", seen, ok)
	}
	// Checks are spaced out.
	mu.Lock()
	present["192.168.77.21"] = true
	mu.Unlock()
	f.now = f.now.Add(time.Minute)
	sample("192.168.77.21")
	if seen, _ := p.LastSeen("192.168.77.21"); !seen.Equal(start) {
		t.Error("a second check within minutes ran")
	}
}

// The digest reads presence while it holds the engine and a database write;
// a presence check writing at the same time must not wait for it forever.
func TestPresenceAndDigestDoNotDeadlock(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	f.list(true, share(8080, "192.168.77.21", "web"))
	p := NewPresenceTracker(f.db, func(context.Context, string) bool { return true }, time.Now, nil)
	f.engine.presence = p
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			p.check(context.Background(), []string{"192.168.77.21"})
			if _, err := f.engine.MakeDigest(context.Background(), time.Time{}, true); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 200 {
		p.check(context.Background(), []string{"192.168.77.21"})
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("presence and the digest deadlocked")
	}
}

func TestReportUnaskedAfterUnpair(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	ch := f.list(true, share(8080, "192.168.77.21", "web"))
	f.clearOutbox()
	f.engine.SetChat(99)
	n, err := f.engine.ReportUnasked(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("ReportUnasked = %d, %v; want the question of the old chat asked again", n, err)
	}
	if a := f.alert(ch.Alerts[0]); a.State != storage.AlertSuperseded {
		t.Errorf("old question is %s", a.State)
	}
	if items := f.outbox(); len(items) != 1 || items[0].ChatID != 99 {
		t.Errorf("outbox = %+v", items)
	}
}

// The bot reads the chat on every update; it must not wait for a listing
// or a Block that holds the engine.
func TestChatIsReadWithoutTheLock(t *testing.T) {
	f := newFixture(t)
	f.engine.mu.Lock()
	defer f.engine.mu.Unlock()
	done := make(chan int64)
	go func() {
		f.engine.SetChat(99)
		done <- f.engine.Chat()
	}()
	select {
	case got := <-done:
		if got != 99 {
			t.Errorf("Chat() = %d, want 99", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Chat waited for the engine's lock")
	}
}
