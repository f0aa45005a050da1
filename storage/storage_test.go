package storage

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/doorman-upnp/doorman/watcher"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "doorman.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenSecondInstanceIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "doorman.db")
	first, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	start := time.Now()
	second, err := Open(context.Background(), path, Options{Timeout: 200 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second Open succeeded")
	}
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("error = %v, want ErrInUse", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("refusal took %s", took)
	}
	for _, want := range []string{path, "in use"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	first.Close()
	again, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	again.Close()
}

func TestOpenBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte("this is not a bbolt file, it is a shopping list\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	noise := filepath.Join(dir, "noise.db")
	if err := os.WriteFile(noise, big, 0o600); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(dir, "newer.db")
	b, err := bolt.Open(newer, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return m.Put(keySchema, u64(SchemaVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	unreadable := filepath.Join(dir, "dir.db")
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		path string
		want error
	}{
		{"garbage", garbage, ErrDamaged},
		{"noise", noise, ErrDamaged},
		{"newer schema", newer, ErrSchema},
		{"a directory", unreadable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(context.Background(), tt.path, Options{Timeout: 100 * time.Millisecond})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if !contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func mapping(port uint16, client, desc string) watcher.Mapping {
	return watcher.Mapping{
		Router: "http://192.168.1.1:5000/rootDesc.xml", Service: "urn:schemas-upnp-org:service:WANIPConnection:2",
		Protocol: "TCP", ExternalPort: port, InternalClient: client, InternalPort: port, Enabled: true,
		Description: desc, Origin: watcher.OriginUPnP,
	}
}

func TestSharesByRouterAndCopies(t *testing.T) {
	db := openTemp(t)
	a := mapping(8080, "192.168.1.20", "web")
	b := mapping(22, "192.168.1.21", "ssh")
	other := mapping(8080, "10.0.0.2", "web")
	other.Router = "http://192.168.1.10:5000/rootDesc.xml"
	err := db.Update(func(tx *Tx) error {
		for _, m := range []watcher.Mapping{a, b, other} {
			if err := tx.PutShare(Share{Mapping: m, FirstSeen: time.Unix(100, 0)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []Share
	if err := db.View(func(tx *Tx) (err error) { got, err = tx.Shares(a.Router); return err }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d shares of the router, want 2: %+v", len(got), got)
	}
	got[0].Mapping.Description = "changed outside"
	var again Share
	if err := db.View(func(tx *Tx) (err error) {
		again, _, err = tx.Share(ShareKey(got[0].Mapping.Key()))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if again.Mapping.Description == "changed outside" {
		t.Error("a returned share aliases stored data")
	}
	var all []Share
	db.View(func(tx *Tx) (err error) { all, err = tx.Shares(""); return err })
	if len(all) != 3 {
		t.Errorf("all shares = %d, want 3", len(all))
	}
}

func TestRulesAlertsOutbox(t *testing.T) {
	db := openTemp(t)
	m := mapping(8000, "192.168.1.20", "NAT-PMP 8000 tcp")
	err := db.Update(func(tx *Tx) error {
		if err := tx.PutRule(&Rule{Kind: RuleTrust, Service: ServiceOf(m)}); err != nil {
			return err
		}
		if err := tx.PutRule(&Rule{Kind: RuleBlock, Service: ServiceOf(m)}); err != nil {
			return err
		}
		first := &Alert{Kind: AlertExisting, State: AlertPending}
		if err := tx.PutAlert(first); err != nil {
			return err
		}
		first.Batch = first.ID
		if err := tx.PutAlert(first); err != nil {
			return err
		}
		if err := tx.PutAlert(&Alert{Kind: AlertNew}); err != nil {
			return err
		}
		if err := tx.PutAlert(&Alert{Kind: AlertExisting, Batch: first.ID}); err != nil {
			return err
		}
		for _, text := range []string{"one", "two", "three"} {
			if err := tx.Enqueue(&OutboxItem{Kind: OutboxNotice, Text: text}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *Tx) error {
		moved := m
		moved.ExternalPort, moved.Description = 8001, "NAT-PMP 8001 tcp"
		r, ok, err := tx.RuleFor(ServiceOf(moved), "")
		if err != nil || !ok || r.Kind != RuleBlock {
			t.Errorf("RuleFor = %+v %v %v, want the block rule", r, ok, err)
		}
		batch, err := tx.MessageAlerts(1)
		if err != nil || len(batch) != 2 || batch[1].ID != 3 {
			t.Errorf("MessageAlerts(1) = %+v, %v; want alerts 1 and 3", batch, err)
		}
		alone, err := tx.MessageAlerts(2)
		if err != nil || len(alone) != 1 {
			t.Errorf("MessageAlerts(2) = %+v, %v", alone, err)
		}
		if _, err := tx.Alert(99); !errors.Is(err, ErrNotFound) {
			t.Errorf("Alert(99) error = %v, want ErrNotFound", err)
		}
		it, ok, err := tx.NextOutbox()
		if err != nil || !ok || it.Text != "one" {
			t.Errorf("NextOutbox = %+v %v %v", it, ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// An error from the function rolls everything back.
	boom := errors.New("boom")
	err = db.Update(func(tx *Tx) error {
		if err := tx.RemoveOutbox(1); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v", err)
	}
	db.View(func(tx *Tx) error {
		items, _ := tx.Outbox()
		if len(items) != 3 {
			t.Errorf("outbox after rollback has %d items, want 3", len(items))
		}
		_, rules, alerts, outbox := tx.Count()
		if rules != 2 || alerts != 3 || outbox != 3 {
			t.Errorf("Count = %d rules %d alerts %d outbox", rules, alerts, outbox)
		}
		return nil
	})
}

func TestStateSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorman.db")
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { return tx.SetMeta("telegram_offset", 42) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var off int
	var ok bool
	db.View(func(tx *Tx) (err error) { ok, err = tx.Meta("telegram_offset", &off); return err })
	if !ok || off != 42 {
		t.Errorf("offset = %d %v, want 42", off, ok)
	}
}

func TestStripDigits(t *testing.T) {
	tests := []struct{ in, want string }{
		{"NAT-PMP 8000 tcp", "NAT-PMP tcp"},
		{"Teredo 51234", "Teredo"},
		{"qBittorrent/4.6.2", "qBittorrent/.."},
		{"", ""},
		{"  plex  ", "plex"},
	}
	for _, tt := range tests {
		if got := StripDigits(tt.in); got != tt.want {
			t.Errorf("StripDigits(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// readOnlyFS opens files for reading only, whatever is asked: writes then
// fail as on a file system remounted read-only under a running doorman.
func readOnlyFS(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag&^(os.O_RDWR|os.O_WRONLY|os.O_CREATE), perm)
}

// refusingFS refuses to open files for writing, as a read-only mount does.
func refusingFS(name string, flag int, perm os.FileMode) (*os.File, error) {
	if flag&(os.O_RDWR|os.O_WRONLY) != 0 {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EROFS}
	}
	return os.OpenFile(name, flag, perm)
}

func TestUnwritableDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorman.db")
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { return tx.PutShare(Share{Mapping: mapping(80, "192.168.1.2", "web")}) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	tests := []struct {
		name      string
		open      func(string, int, os.FileMode) (*os.File, error)
		atOpen    bool
		wantInErr string
	}{
		{"read-only mount at start", refusingFS, true, "read-only file system"},
		{"writes fail while running", readOnlyFS, false, "bad file descriptor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log strings.Builder
			db, err := Open(context.Background(), path, Options{OpenFile: tt.open, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := db.WriteFault() != nil; got != tt.atOpen {
				t.Errorf("WriteFault at open = %v, want %v", db.WriteFault(), tt.atOpen)
			}
			for i := range 20 {
				err := db.Update(func(tx *Tx) error { return tx.SetMeta("telegram_offset", i) })
				if !errors.Is(err, ErrUnwritable) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantInErr) {
					t.Fatalf("Update %d error = %v, want ErrUnwritable naming the file and %q", i, err, tt.wantInErr)
				}
			}
			var shares []Share
			if err := db.View(func(tx *Tx) (err error) { shares, err = tx.Shares(""); return err }); err != nil || len(shares) != 1 {
				t.Errorf("reading: %d shares, %v", len(shares), err)
			}
			f := db.WriteFault()
			if f == nil || !errors.Is(f.Err, ErrUnwritable) || f.Count < 20 {
				t.Errorf("WriteFault = %+v", f)
			}
			if n := strings.Count(log.String(), "\n"); n != 1 || !strings.Contains(log.String(), "unable to save changes") {
				t.Errorf("log has %d lines, want 1:\n%s", n, log.String())
			}
			if db.DamageErr() != nil {
				t.Errorf("an unwritable file counts as damaged: %v", db.DamageErr())
			}
		})
	}
}

func TestWriteFaultEpisodes(t *testing.T) {
	var log strings.Builder
	db := &DB{path: "x.db", logger: slog.New(slog.NewTextHandler(&log, nil))}
	t0 := time.Unix(1000, 0)
	full := errors.New("no space left on device")
	db.noteWrite(t0, nil)
	for i := range 5 {
		db.noteWrite(t0.Add(time.Duration(i)*time.Minute), full)
	}
	if f := db.WriteFault(); f == nil || f.Count != 5 || !f.Since.Equal(t0) || f.Err != full {
		t.Errorf("WriteFault = %+v", f)
	}
	db.noteWrite(t0.Add(10*time.Minute), nil)
	db.noteWrite(t0.Add(11*time.Minute), nil)
	if f := db.WriteFault(); f != nil {
		t.Errorf("WriteFault after a saved change = %+v", f)
	}
	db.noteWrite(t0.Add(12*time.Minute), full)
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "unable to save") || !strings.Contains(lines[1], "saved again") || !strings.Contains(lines[1], "failed=5") || !strings.Contains(lines[2], "unable to save") {
		t.Errorf("log, want one line per start and end of an episode:\n%s", log.String())
	}
}

func TestPanicInTransaction(t *testing.T) {
	db := openTemp(t)
	err := db.View(func(tx *Tx) error {
		var shares []Share
		_ = shares[len(shares)] // a bug in a caller, not damage
		return nil
	})
	if err == nil || errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "bug") {
		t.Errorf("error = %v, want a bug that is not damage", err)
	}
	if db.DamageErr() != nil {
		t.Error("a bug was announced as damage")
	}
	if err := db.Update(func(tx *Tx) error { return tx.SetMeta("x", 1) }); err != nil {
		t.Errorf("the database does not work after a recovered panic: %v", err)
	}
}

// The index of open questions follows every write, and a database from
// before it existed gets it at open.
func TestPendingIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorman.db")
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	err = db.Update(func(tx *Tx) error {
		for i := range 6 {
			a := Alert{State: AlertPending}
			if i%2 == 1 {
				a.State = AlertAllowed
			}
			if err := tx.PutAlert(&a); err != nil {
				return err
			}
			ids = append(ids, a.ID)
		}
		a, err := tx.Alert(ids[0])
		if err != nil {
			return err
		}
		a.State = AlertBlocked
		if err := tx.PutAlert(&a); err != nil {
			return err
		}
		return tx.DeleteAlert(ids[2])
	})
	if err != nil {
		t.Fatal(err)
	}
	pending := func(db *DB) []uint64 {
		t.Helper()
		var out []uint64
		if err := db.View(func(tx *Tx) error {
			as, err := tx.PendingAlerts()
			for _, a := range as {
				out = append(out, a.ID)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := pending(db); len(got) != 1 || got[0] != ids[4] {
		t.Errorf("pending = %v, want [%d]", got, ids[4])
	}
	// As a database of an older doorman: no index.
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketPending) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := pending(db); len(got) != 1 || got[0] != ids[4] {
		t.Errorf("pending after the index was built = %v, want [%d]", got, ids[4])
	}
}
