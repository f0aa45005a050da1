package approvals

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// testApps names two apps by their descriptions, as identify's table does.
func testApps(m watcher.Mapping) string {
	switch {
	case strings.HasPrefix(m.Description, "Plex"):
		return "Plex"
	case strings.HasPrefix(m.Description, "Transmission"):
		return "Transmission"
	}
	return ""
}

func udp(m watcher.Mapping) watcher.Mapping {
	m.Protocol = "UDP"
	return m
}

func (f *fixture) messages() []storage.OutboxItem {
	var out []storage.OutboxItem
	for _, it := range f.outbox() {
		if it.Kind == storage.OutboxAlert {
			out = append(out, it)
		}
	}
	return out
}

func (f *fixture) decide(id uint64, d Decision) storage.Alert {
	f.t.Helper()
	a, err := f.engine.Decide(context.Background(), id, d, alice)
	if err != nil {
		f.t.Fatalf("Decide(%d, %s): %v", id, d, err)
	}
	return a
}

func TestServiceIsOneQuestionAndOneDecision(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	tcp := share(51413, "192.168.77.21", "Transmission at 51413")
	ch := f.list(true, tcp, udp(tcp))
	if len(ch.Alerts) != 2 || len(f.messages()) != 1 {
		t.Fatalf("changes %+v, %d messages; want two shares in one message", ch, len(f.messages()))
	}
	owner := ch.Alerts[0]
	// A third share of the service (NAT-PMP, another outside port) joins
	// it with an edit.
	f.clearOutbox()
	pmp := share(51999, "192.168.77.21", "NAT-PMP 51999 tcp")
	pmp.InternalPort = 51413
	ch = f.list(true, tcp, udp(tcp), pmp)
	if len(ch.Alerts) != 1 || len(f.messages()) != 0 || f.alert(ch.Alerts[0]).Batch != owner {
		t.Fatalf("joining share: changes %+v, outbox %+v", ch, f.outbox())
	}
	if items := f.outbox(); len(items) != 1 || items[0].Kind != storage.OutboxEdit || items[0].AlertID != owner {
		t.Errorf("outbox = %+v, want one edit of message %d", items, owner)
	}
	// Block covers them all.
	if a := f.decide(owner, Block); a.State != storage.AlertBlocked {
		t.Fatalf("alert %+v", a)
	}
	if n := f.router.Count(); n != 3 {
		t.Errorf("Block closed %d shares, want 3: %v", n, f.router.Deletes())
	}
	for _, id := range []uint64{owner, owner + 1, ch.Alerts[0]} {
		if a := f.alert(id); a.State != storage.AlertBlocked {
			t.Errorf("alert %d is %s after the Block", id, a.State)
		}
	}
	rules := f.rules()
	if len(rules) != 1 || rules[0].Scope != storage.ScopePort || rules[0].Kind != storage.RuleBlock {
		t.Fatalf("rules = %+v", rules)
	}
	// The device reopens the port under another name and outside port:
	// closed again, nobody asked.
	f.clearOutbox()
	escape := share(2324, "192.168.77.21", "totally legit")
	escape.InternalPort = 51413
	ch = f.list(true, escape)
	if len(ch.Alerts) != 0 || ch.Enforced != 1 {
		t.Errorf("escape: %+v", ch)
	}
}

func TestAllowCoversTheServiceButNotAnotherApp(t *testing.T) {
	f := newFixture(t)
	f.engine.appName = testApps
	f.list(true)
	plex := share(32400, "192.168.77.21", "Plex Media Server")
	ch := f.list(true, plex)
	f.decide(ch.Alerts[0], Allow)
	renewal := udp(plex)
	renewal.ExternalPort = 32401
	if ch := f.list(true, plex, renewal); len(ch.Alerts) != 0 {
		t.Errorf("a renewal of an allowed service was asked about: %+v", ch)
	}
	other := share(32400, "192.168.77.21", "Transmission at 32400")
	other.ExternalPort = 32402
	ch = f.list(true, plex, renewal, other)
	if len(ch.Alerts) != 1 {
		t.Fatalf("another app on the allowed port was not asked about: %+v", ch)
	}
	// Allowed too, it has a rule of its own; Plex keeps its own.
	f.decide(ch.Alerts[0], Allow)
	if rs := f.rules(); len(rs) != 2 {
		t.Errorf("rules = %+v, want one per app", rs)
	}
	other.ExternalPort = 32403
	if ch := f.list(true, plex, renewal, other); len(ch.Alerts) != 0 {
		t.Errorf("the allowed second app was asked about again: %+v", ch)
	}
}

func TestBusyDeviceIsOneMessageAndBlockEverything(t *testing.T) {
	f := newFixture(t)
	f.engine.macOf = func(ip string) string {
		if ip == "192.168.77.21" || ip == "192.168.77.99" {
			return "aa:bb:cc:dd:ee:ff"
		}
		return ""
	}
	f.list(true)
	var open []watcher.Mapping
	// The first shares come one listing each: each is asked about, until
	// the sixth makes the device busy and one message asks instead.
	for i := range 60 {
		open = append(open, share(uint16(30000+i), "192.168.77.21", fmt.Sprint("burst ", i)))
		f.list(true, open...)
		f.now = f.now.Add(100 * time.Millisecond)
	}
	var busy []storage.Alert
	var owner uint64
	f.db.View(func(tx *storage.Tx) error {
		alerts, _ := tx.Alerts()
		for _, a := range alerts {
			if a.Busy {
				busy = append(busy, a)
				owner = a.ID
			}
		}
		return nil
	})
	if len(busy) != 1 {
		t.Fatalf("%d busy-device messages, want 1", len(busy))
	}
	msgs := f.messages()
	if len(msgs) != 6 || msgs[5].AlertID != owner {
		t.Errorf("messages = %+v, want five questions then the busy device's", msgs)
	}
	var members int
	f.db.View(func(tx *storage.Tx) error {
		as, _ := tx.MessageAlerts(owner)
		members = len(as)
		for _, id := range []uint64{1, 5} {
			if a, _ := tx.Alert(id); a.State != storage.AlertSuperseded || a.Note.Kind != storage.NoteBusyDevice {
				t.Errorf("the earlier question %d is %s (%s), want folded into the busy device's", id, a.State, a.Note.Kind)
			}
		}
		return nil
	})
	if members != 55 {
		t.Errorf("the busy message holds %d shares, want 55", members)
	}
	// Block on the busy message blocks the whole device: all 60 closed.
	if a := f.decide(owner, Block); a.State != storage.AlertBlocked || a.Note.Kind != storage.NoteBlockedDevice {
		t.Fatalf("alert %+v", a)
	}
	if n := f.router.Count(); n != 60 {
		t.Errorf("Block everything closed %d shares, want 60", n)
	}
	if rs := f.rules(); len(rs) != 1 || rs[0].Scope != storage.ScopeDevice || rs[0].Kind != storage.RuleBlock || rs[0].MAC != "aa:bb:cc:dd:ee:ff" {
		t.Errorf("rules = %+v", rs)
	}
	// The next share of the device, at another address, is closed without
	// a question; another device is still asked.
	f.clearOutbox()
	ch := f.list(true, share(40000, "192.168.77.99", "next"), share(40001, "192.168.77.22", "other"))
	if ch.Enforced != 1 || len(ch.Alerts) != 1 || f.alert(ch.Alerts[0]).Share.Mapping.InternalClient != "192.168.77.22" {
		t.Errorf("after Block everything: %+v", ch)
	}
}

func TestBlockEverythingFromAnOrdinaryQuestion(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	a, b := share(8080, "192.168.77.21", "web"), share(9090, "192.168.77.21", "admin")
	ch := f.list(true, a, b)
	got := f.decide(ch.Alerts[0], BlockDevice)
	if got.State != storage.AlertBlocked || f.router.Count() != 2 {
		t.Errorf("alert %+v, %d deletes, want both shares closed", got, f.router.Count())
	}
	if o := f.alert(ch.Alerts[1]); o.State != storage.AlertBlocked {
		t.Errorf("the device's other question is %s", o.State)
	}
}

func TestAllowDeviceLosesToABlock(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	telnet := share(2323, "192.168.77.21", "telnetd camera")
	telnet.InternalPort = 23
	ch := f.list(true, telnet)
	f.decide(ch.Alerts[0], Block)
	cam := share(8080, "192.168.77.21", "camera web")
	ch = f.list(true, cam)
	f.decide(ch.Alerts[0], AllowDevice)
	before := f.router.Count()
	telnet.Description = "totally legit"
	ch = f.list(true, cam, telnet)
	if ch.Enforced != 1 || f.router.Count() != before+1 || len(ch.Alerts) != 0 {
		t.Errorf("a trusted device's blocked service: %+v", ch)
	}
}

func TestOldRulesLoadAndWork(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	web := share(8080, "192.168.77.21", "web 1")
	// Rules as doorman stored them before ports: protocol and
	// digit-stripped description, no scope.
	f.db.Update(func(tx *storage.Tx) error {
		if err := tx.PutRule(&storage.Rule{Kind: storage.RuleTrust, Service: storage.ServiceOf(web), Example: web}); err != nil {
			return err
		}
		blocked := share(23, "192.168.77.21", "telnetd")
		return tx.PutRule(&storage.Rule{Kind: storage.RuleBlock, Service: storage.ServiceOf(blocked), Example: blocked})
	})
	renamed := share(2323, "192.168.77.21", "totally legit")
	renamed.InternalPort = 23
	web2 := web
	web2.Description, web2.ExternalPort = "web 2", 8081
	otherName := web
	otherName.Description, otherName.ExternalPort = "something else", 8082
	ch := f.list(true, web2, renamed, otherName)
	if ch.Enforced != 1 {
		t.Errorf("an old block was escaped by a new description: %+v", ch)
	}
	if len(ch.Alerts) != 1 || f.alert(ch.Alerts[0]).Share.Mapping.ExternalPort != 8082 {
		t.Errorf("an old trust was widened or lost: %+v", ch)
	}
}

func TestBusyLimitString(t *testing.T) {
	if s := DefaultBusyLimit.String(); s != "5/1m" {
		t.Errorf("String() = %q", s)
	}
}

func TestGatheredQuestionsGoOutOnceAndBusyOnesNever(t *testing.T) {
	f := newFixture(t)
	f.engine.gather = time.Hour // sent by hand below, not by the timer
	f.list(true)
	tcp := share(51413, "192.168.77.21", "Transmission at 51413")
	f.list(true, tcp)
	f.list(true, tcp, udp(tcp))
	if n := len(f.messages()); n != 0 {
		t.Fatalf("%d messages before the gather time", n)
	}
	f.now = f.now.Add(time.Hour)
	f.engine.sendHeld()
	if msgs := f.messages(); len(msgs) != 1 {
		t.Fatalf("messages = %+v, want the service's one", msgs)
	}
	// A burst: the first questions are folded before they are sent, and
	// only the busy device's message goes out.
	f.clearOutbox()
	var burst []watcher.Mapping
	for i := range 8 {
		burst = append(burst, share(uint16(30000+i), "192.168.77.22", fmt.Sprint("burst ", i)))
		f.list(true, append([]watcher.Mapping{tcp, udp(tcp)}, burst...)...)
	}
	f.now = f.now.Add(time.Hour)
	f.engine.sendHeld()
	msgs := f.messages()
	if len(msgs) != 1 || !f.alert(msgs[0].AlertID).Busy {
		t.Fatalf("messages = %+v, want the busy device's only", msgs)
	}
}

func TestHeldQuestionIsSentAfterARestart(t *testing.T) {
	f := newFixture(t)
	f.engine.gather = time.Hour
	f.list(true)
	f.list(true, share(8080, "192.168.77.21", "web"))
	if n := len(f.messages()); n != 0 {
		t.Fatalf("%d messages before the gather time", n)
	}
	if _, err := New(Config{DB: f.db, Router: f.router, ChatID: 42}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.messages()); n != 1 {
		t.Errorf("%d messages after the restart, want the held one", n)
	}
	if _, err := New(Config{DB: f.db, Router: f.router, ChatID: 42}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.messages()); n != 1 {
		t.Errorf("%d messages after a second restart, want it once", n)
	}
}

func TestFlipsBetweenDevicesSendOneMessagePerServiceAndInterval(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	a, b := share(8080, "192.168.77.21", "web"), share(8080, "192.168.77.22", "web")
	f.list(true, a)
	for i := range 10 {
		f.now = f.now.Add(time.Second)
		if i%2 == 0 {
			f.list(true, b)
		} else {
			f.list(true, a)
		}
	}
	// A's first question, then one from a change for B and one for A.
	if n := len(f.messages()); n != 3 {
		t.Errorf("%d messages from 10 flips, want 3", n)
	}
	// Past the interval, the share that the limit left unasked is asked.
	f.now = f.now.Add(DefaultNoticeInterval)
	if ch := f.list(true, a); len(ch.Alerts) != 1 {
		t.Errorf("after the interval: %+v, want the unasked share asked", ch)
	}
}

func TestBlockDeletesOnlyTheListedShare(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	camera := share(2323, "192.168.77.21", "telnetd camera")
	ch := f.list(true, camera)
	// Between the listing and the press, another device took the port.
	taken := share(2323, "192.168.77.30", "console")
	f.router.Changed = map[watcher.Key]watcher.Mapping{camera.Key(): taken}
	a := f.decide(ch.Alerts[0], Block)
	if a.State != storage.AlertBlocked || f.router.Count() != 0 {
		t.Errorf("alert %s, %d deletes; want the Block recorded and nothing deleted", a.State, f.router.Count())
	}
	// The listing the watcher makes then asks about the new share, and
	// the camera's block does not touch it.
	f.router.Changed = nil
	ch = f.list(true, taken)
	if len(ch.Alerts) != 1 || ch.Enforced != 0 {
		t.Errorf("the share that took the port: %+v, want it asked about", ch)
	}
	// A block rule whose share changed hands as it acts deletes nothing
	// and says nothing.
	f.clearOutbox()
	camera.ExternalPort = 2424
	f.router.Changed = map[watcher.Key]watcher.Mapping{camera.Key(): share(2424, "192.168.77.31", "other")}
	ch = f.list(true, taken, camera)
	if ch.Enforced != 1 || f.router.Count() != 0 || len(f.outbox()) != 0 {
		t.Errorf("enforcing on a changed share: %+v, %d deletes, outbox %+v", ch, f.router.Count(), f.outbox())
	}
}

// The share that owns a service's message going to another device closes
// its own question, not those of the shares still asked about in the
// message: Block on one of them closes all of the service's shares the
// message still asks about.
func TestBlockAfterTheMessageOwnerWasSuperseded(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	tcp := share(51413, "192.168.77.21", "Transmission at 51413")
	pmp := share(51999, "192.168.77.21", "NAT-PMP 51999 tcp")
	pmp.InternalPort = 51413
	ch := f.list(true, tcp, udp(tcp), pmp)
	if len(ch.Alerts) != 3 || len(f.messages()) != 1 {
		t.Fatalf("changes %+v, %d messages; want three shares in one message", ch, len(f.messages()))
	}
	owner, joined := ch.Alerts[0], ch.Alerts[1]
	// Another device has the owner's port now.
	other := share(51413, "192.168.77.22", "Transmission at 51413")
	f.list(true, other, udp(tcp), pmp)
	if a := f.alert(owner); a.State != storage.AlertSuperseded {
		t.Fatalf("owner is %s, want superseded", a.State)
	}
	if a := f.alert(joined); a.State != storage.AlertPending || a.Message() != owner {
		t.Fatalf("joined alert %+v, want pending in message %d", a, owner)
	}
	f.decide(joined, Block)
	if n := f.router.Count(); n != 2 {
		t.Errorf("Block closed %d shares, want the 2 still asked about: %v", n, f.router.Deletes())
	}
}

// A burst that reaches doorman over several listings and more than the
// gather time (a loaded machine, a slow router) still costs one message: a
// held question waits while its device opens new shares, up to five gather
// times, and another device's question does not wait for it.
func TestHeldWhileTheDeviceStillOpensShares(t *testing.T) {
	f := newFixture(t)
	f.engine.gather = time.Hour // sent by hand below, not by the timer
	f.engine.busyLimit = BusyLimit{Shares: 5, Window: 10 * time.Hour}
	f.list(true)
	quiet := share(8080, "192.168.77.30", "web")
	burst := []watcher.Mapping{quiet}
	open := func(i int) {
		burst = append(burst, share(uint16(30000+i), "192.168.77.22", fmt.Sprint("burst ", i)))
		f.list(true, burst...)
	}
	open(0)
	for i := 1; i <= 3; i++ {
		f.now = f.now.Add(50 * time.Minute)
		open(i)
		f.engine.sendHeld()
	}
	// Past the gather time for the first shares, but the device is still
	// at it: only the quiet device's question went out.
	msgs := f.messages()
	if len(msgs) != 1 || f.alert(msgs[0].AlertID).Share.Mapping.InternalClient != quiet.InternalClient {
		t.Fatalf("messages = %+v, want the quiet device's question only", msgs)
	}
	f.now = f.now.Add(50 * time.Minute)
	for i := 4; i <= 6; i++ {
		open(i)
	}
	f.now = f.now.Add(70 * time.Minute)
	f.engine.sendHeld()
	msgs = f.messages()
	if len(msgs) != 2 || !f.alert(msgs[1].AlertID).Busy {
		t.Fatalf("messages = %+v, want the quiet device's question and the busy device's message", msgs)
	}

	// A device that never pauses still gets its question after five
	// gather times.
	f.clearOutbox()
	f.engine.busyLimit = BusyLimit{Shares: 100, Window: 10 * time.Hour}
	nonstop := []watcher.Mapping{share(41000, "192.168.77.40", "nonstop 0")}
	f.list(true, nonstop...)
	for i := 1; i < 12; i++ {
		f.now = f.now.Add(30 * time.Minute)
		nonstop = append(nonstop, share(uint16(41000+i), "192.168.77.40", fmt.Sprint("nonstop ", i)))
		f.list(true, nonstop...)
		f.engine.sendHeld()
		if len(f.messages()) > 0 {
			if elapsed := time.Duration(i) * 30 * time.Minute; elapsed < 5*time.Hour {
				t.Fatalf("the question went out after %s, before five gather times", elapsed)
			}
			return
		}
	}
	t.Fatal("a device that never pauses never got its question")
}
