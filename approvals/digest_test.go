package approvals

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

type fakePresence map[string]time.Time

func (p fakePresence) LastSeen(ip string) (time.Time, bool) {
	t, ok := p[ip]
	return t, ok
}

func kinds(rs []storage.StaleReason) string {
	var k []string
	for _, r := range rs {
		k = append(k, r.Kind)
	}
	return strings.Join(k, ",")
}

func TestStaleReasons(t *testing.T) {
	day := 24 * time.Hour
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	lease := func(d time.Duration) watcher.Mapping {
		m := share(8080, "192.168.77.21", "web")
		m.LeaseDuration = d
		return m
	}
	tests := []struct {
		name   string
		m      watcher.Mapping
		age    time.Duration
		seen   time.Duration // how long ago the device was seen; 0 = unknown
		reason string
	}{
		{"fresh and leased", lease(time.Hour), time.Hour, 0, ""},
		{"fresh and permanent", lease(0), time.Hour, 0, ""},
		{"a day old and permanent", lease(0), 25 * time.Hour, 0, "permanent"},
		{"old", lease(time.Hour), 15 * day, 0, "old"},
		{"old and permanent", lease(0), 20 * day, 0, "old,permanent"},
		{"lease far longer than use", lease(30 * day), 2 * day, 0, "long-lease"},
		{"lease about as long as use", lease(8 * day), 2 * day, 0, ""},
		{"device away", lease(time.Hour), 2 * day, 3 * day, "device-away"},
		{"device seen recently", lease(time.Hour), 2 * day, time.Hour, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.engine.presence = fakePresence{}
			if tt.seen > 0 {
				f.engine.presence = fakePresence{"192.168.77.21": now.Add(-tt.seen)}
			}
			got := f.engine.staleReasons(storage.Share{Mapping: tt.m, FirstSeen: now.Add(-tt.age)}, now)
			if kinds(got) != tt.reason {
				t.Errorf("reasons = %+v, want %q", got, tt.reason)
			}
		})
	}
}

func TestMakeDigest(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	rdp := share(3389, "192.168.77.40", "RDP")
	rdp.LeaseDuration = 0
	web := share(8081, "192.168.77.21", "web")
	web.LeaseDuration = time.Hour
	fresh := share(9000, "192.168.77.22", "fresh")
	fresh.LeaseDuration = time.Hour
	f.list(true, rdp, web)
	// A trust rule that will match nothing.
	idle := share(5000, "192.168.77.50", "old game")
	ch := f.list(true, rdp, web, idle)
	if _, err := f.engine.Decide(context.Background(), ch.Alerts[0], Allow, alice); err != nil {
		t.Fatal(err)
	}
	f.list(true, rdp, web)
	f.now = f.now.Add(DefaultStaleAfter + time.Hour)
	f.list(true, rdp, web, fresh)
	f.clearOutbox()

	d, err := f.engine.MakeDigest(context.Background(), f.now, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID == 0 || d.OpenShares != 3 || len(d.Items) != 2 || len(d.Rules) != 1 || d.Pages != 1 {
		t.Fatalf("digest = %+v", d)
	}
	if d.Items[0].Mapping.ExternalPort != 3389 || d.Items[0].Risk == "" || !strings.Contains(d.Items[0].Risk, "Remote Desktop") {
		t.Errorf("the risky share is not first: %+v", d.Items)
	}
	if got := kinds(d.Items[0].Reasons); got != "old,permanent" {
		t.Errorf("RDP reasons %q", got)
	}
	if items := f.outbox(); len(items) != 1 || items[0].Kind != storage.OutboxDigest || items[0].DigestID != d.ID {
		t.Errorf("outbox = %+v", items)
	}

	// Keep snoozes the share; Close deletes it without a block rule.
	if _, err := f.engine.KeepStale(context.Background(), d.ID, 1, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.KeepStale(context.Background(), d.ID, 1, alice); !errors.Is(err, ErrDecided) {
		t.Errorf("second Keep error = %v", err)
	}
	if _, err := f.engine.CloseStale(context.Background(), d.ID, 0, alice); err != nil {
		t.Fatal(err)
	}
	if f.router.Count() != 1 || f.router.Deletes()[0] != rdp.Key() {
		t.Errorf("deletes = %+v", f.router.Deletes())
	}
	for _, r := range f.rules() {
		if r.Kind == storage.RuleBlock {
			t.Errorf("Close made a block rule: %+v", r)
		}
	}
	if err := f.engine.ForgetIdleRule(context.Background(), d.ID, 0); err != nil {
		t.Fatal(err)
	}
	if rs := f.rules(); len(rs) != 0 {
		t.Errorf("rules after forgetting = %+v", rs)
	}
	for _, bad := range []int{-1, 2, 99} {
		if _, err := f.engine.CloseStale(context.Background(), d.ID, bad, alice); !errors.Is(err, ErrDigestItem) {
			t.Errorf("CloseStale(%d) error = %v", bad, err)
		}
	}
	if _, err := f.engine.CloseStale(context.Background(), 999, 0, alice); !errors.Is(err, ErrDigestItem) {
		t.Errorf("unknown digest error = %v", err)
	}
	var edits int
	for _, it := range f.outbox() {
		if it.Kind == storage.OutboxDigestEdit {
			edits++
		}
	}
	if edits != 3 {
		t.Errorf("%d digest edits queued, want 3", edits)
	}

	// The kept share stays out of the next digest; the closed one is gone.
	f.list(true, web, fresh)
	d2, err := f.engine.MakeDigest(context.Background(), f.now, true)
	if err != nil {
		t.Fatal(err)
	}
	if d2.ID != 0 || len(d2.Items) != 0 {
		t.Errorf("second digest = %+v, want an all-clear that is skipped", d2)
	}
}

func TestCloseStaleRefused(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	m := share(445, "192.168.77.40", "SMB")
	f.list(true, m)
	f.now = f.now.Add(DefaultStaleAfter + time.Hour)
	d, err := f.engine.MakeDigest(context.Background(), time.Time{}, false)
	if err != nil || len(d.Items) != 1 {
		t.Fatalf("digest %+v, %v", d, err)
	}
	f.router.Err = &watcher.DeleteError{Err: fmt.Errorf("%w: %w", watcher.ErrDeleteRefused, &watcher.UPnPError{Code: 606})}
	it, err := f.engine.CloseStale(context.Background(), d.ID, 0, alice)
	var refused *RefusedError
	if !errors.As(err, &refused) || it.State != storage.DigestRefused || it.Note.Kind != storage.NoteSeeBelow {
		t.Errorf("item %+v, error %v", it, err)
	}
	var notice bool
	for _, o := range f.outbox() {
		notice = notice || (o.Kind == storage.OutboxNotice && o.Notice != nil && o.Notice.Kind == storage.NoticeStaleNotClosed && o.Notice.Note == storage.Note{Kind: storage.NoteRefused, UPnPCode: 606})
	}
	if !notice {
		t.Errorf("no notice explains the refusal: %+v", f.outbox())
	}
	// It can be tried again once the owner changed the router.
	f.router.Err = nil
	if it, err := f.engine.CloseStale(context.Background(), d.ID, 0, alice); err != nil || it.State != storage.DigestClosed {
		t.Errorf("retry: %+v %v", it, err)
	}
}

func TestDigestPages(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	var ms []watcher.Mapping
	for i := range 2*fallbackPageEntries + 3 {
		ms = append(ms, share(uint16(20000+i), "192.168.77.21", fmt.Sprintf("app %d", i)))
	}
	f.list(true, ms...)
	f.now = f.now.Add(DefaultStaleAfter + time.Hour)
	d, err := f.engine.MakeDigest(context.Background(), time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.Pages != 3 || len(d.MessageIDs) != 3 || d.Items[len(d.Items)-1].Page != 2 {
		t.Errorf("pages = %d, last item on page %d", d.Pages, d.Items[len(d.Items)-1].Page)
	}
	var digestItems int
	for _, it := range f.outbox() {
		if it.Kind == storage.OutboxDigest {
			digestItems++
		}
	}
	if digestItems != 3 {
		t.Errorf("%d pages queued", digestItems)
	}
}

func TestSchedule(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSchedule(DefaultDigestSchedule)
	if err != nil {
		t.Fatal(err)
	}
	// Saturday 21 Nov 2026 → Monday 23 Nov 09:00 in Berlin.
	from := time.Date(2026, 11, 21, 12, 0, 0, 0, berlin)
	if next := s.Next(from); !next.Equal(time.Date(2026, 11, 23, 9, 0, 0, 0, berlin)) {
		t.Errorf("Next = %s", next)
	}
	if _, err := ParseSchedule("every monday"); err == nil || !strings.Contains(err.Error(), "5-field cron") {
		t.Errorf("bad spec error = %v", err)
	}
	monday9 := time.Date(2026, 11, 23, 9, 0, 0, 0, berlin)
	tests := []struct {
		name     string
		lastDone time.Time
		now      time.Time
		want     time.Time
	}{
		{"down over the due time, back within a day", monday9.AddDate(0, 0, -7), monday9.Add(3 * time.Hour), monday9},
		{"more than a day late", monday9.AddDate(0, 0, -7), monday9.Add(25 * time.Hour), time.Time{}},
		{"already sent", monday9, monday9.Add(time.Hour), time.Time{}},
		{"not due yet", monday9.AddDate(0, 0, -7), monday9.Add(-time.Minute), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := MissedDue(s, tt.lastDone, tt.now)
			if !got.Equal(tt.want) || ok != !tt.want.IsZero() {
				t.Errorf("MissedDue = %s %v, want %s", got, ok, tt.want)
			}
		})
	}
}

func TestSchedulerCatchesUp(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	monday9 := time.Date(2026, 11, 23, 9, 0, 0, 0, berlin)
	f.db.Update(func(tx *storage.Tx) error { return tx.SetMeta(metaDigestDue, monday9.AddDate(0, 0, -7)) })
	f.now = monday9.Add(2 * time.Hour)
	s, err := NewDigestScheduler(f.engine, DefaultDigestSchedule, berlin, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(f.outbox()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	items := f.outbox()
	if len(items) != 1 || items[0].Kind != storage.OutboxDigest {
		t.Fatalf("outbox = %+v, want the missed digest", items)
	}
	var last time.Time
	f.db.View(func(tx *storage.Tx) error { _, err := tx.Meta(metaDigestDue, &last); return err })
	if !last.Equal(monday9) {
		t.Errorf("last due = %s", last)
	}
}

func TestScheduleThatNeverComes(t *testing.T) {
	if _, err := ParseSchedule("0 9 30 2 *"); err == nil || !strings.Contains(err.Error(), "never comes due") {
		t.Errorf("30 February: %v", err)
	}
}

func TestKeepSparesAnotherDevice(t *testing.T) {
	f := newFixture(t)
	f.list(true)
	m := share(5000, "192.168.77.21", "game")
	f.list(true, m)
	f.now = f.now.Add(DefaultStaleAfter + time.Hour)
	d, err := f.engine.MakeDigest(context.Background(), time.Time{}, false)
	if err != nil || len(d.Items) != 1 {
		t.Fatalf("%+v %v", d, err)
	}
	other := share(5000, "192.168.77.99", "other game")
	f.list(true)
	f.list(true, other)
	it, err := f.engine.KeepStale(context.Background(), d.ID, 0, alice)
	if err != nil || it.State != storage.DigestGone {
		t.Errorf("Keep on a share another device took: %+v %v", it, err)
	}
	var s storage.Share
	f.db.View(func(tx *storage.Tx) (err error) { s, _, err = tx.Share(storage.ShareKey(other.Key())); return err })
	if !s.SnoozedUntil.IsZero() {
		t.Error("the other device's share was snoozed")
	}
}

type fixedPager []int

func (p fixedPager) Paginate(storage.Digest) []int { return p }

// The pager decides the pages; an answer that does not fit the digest is
// not believed.
func TestDigestPager(t *testing.T) {
	tests := []struct {
		name      string
		pages     []int
		wantPages int
		wantLast  int
	}{
		{"one page", []int{0, 0, 0}, 1, 0},
		{"one each", []int{0, 1, 2}, 3, 2},
		{"too few answers", []int{0, 0}, 1, 0},
		{"a page skipped", []int{0, 2, 2}, 1, 0},
		{"not from 0", []int{1, 1, 1}, 1, 0},
		{"going back", []int{0, 1, 0}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.engine.pager = fixedPager(tt.pages)
			f.list(true)
			f.list(true, share(20000, "192.168.77.21", "a"), share(20001, "192.168.77.21", "b"), share(20002, "192.168.77.21", "c"))
			f.now = f.now.Add(DefaultStaleAfter + time.Hour)
			d, err := f.engine.MakeDigest(context.Background(), time.Time{}, false)
			if err != nil {
				t.Fatal(err)
			}
			if d.Pages != tt.wantPages || len(d.MessageIDs) != tt.wantPages || d.Items[2].Page != tt.wantLast {
				t.Errorf("pages = %d, last item on page %d; want %d, %d", d.Pages, d.Items[2].Page, tt.wantPages, tt.wantLast)
			}
		})
	}
}

func TestValidPages(t *testing.T) {
	if !validPages(nil, 0) || !validPages([]int{0, 0, 1, 1, 2}, 5) || validPages([]int{0}, 0) || validPages([]int{0, -1}, 2) {
		t.Error("validPages is wrong")
	}
}
