package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/storage/storagetest"
	"github.com/doorman-upnp/doorman/watcher"
)

// use does what a running doorman does with the file: every kind of read,
// and writes.
func use(db *storage.DB) error {
	err := db.View(func(tx *storage.Tx) error {
		if _, err := tx.Shares(""); err != nil {
			return err
		}
		if _, err := tx.Shares("http://192.168.1.1:5000/rootDesc.xml"); err != nil {
			return err
		}
		if _, err := tx.Rules(); err != nil {
			return err
		}
		if _, err := tx.Alerts(); err != nil {
			return err
		}
		// Every listing reads the open questions.
		if _, err := tx.PendingAlerts(); err != nil {
			return err
		}
		if _, err := tx.MessageAlerts(1); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if _, err := tx.Outbox(); err != nil {
			return err
		}
		if _, _, err := tx.NextOutbox(); err != nil {
			return err
		}
		tx.Count()
		var off int
		_, err := tx.Meta("telegram_offset", &off)
		return err
	})
	if err != nil {
		return err
	}
	return db.Update(func(tx *storage.Tx) error {
		m := watcher.Mapping{Router: "http://192.168.1.1:5000/rootDesc.xml", Protocol: "UDP", ExternalPort: 3478, InternalClient: "192.168.1.99", InternalPort: 3478}
		if err := tx.PutShare(storage.Share{Mapping: m, FirstSeen: time.Now()}); err != nil {
			return err
		}
		it := &storage.OutboxItem{Kind: storage.OutboxNotice, Text: "x"}
		if err := tx.Enqueue(it); err != nil {
			return err
		}
		return tx.RemoveOutbox(it.Seq)
	})
}

// TestDamagedPageSweep garbles each page of a used database in turn: Open
// finds the damage, or the file works; nothing ever panics.
func TestDamagedPageSweep(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	storagetest.Used(t, good)
	pages := storagetest.Pages(t, good)
	if pages < 20 {
		t.Fatalf("the used database has only %d pages", pages)
	}
	var refused, fine, failedInUse, tries int
	for page := range pages {
		// Two garblings of every third page: a second pattern without
		// doubling the time under -race.
		seeds := []uint64{1}
		if page%3 == 0 {
			seeds = append(seeds, 2)
		}
		for _, seed := range seeds {
			tries++
			path := filepath.Join(dir, "damaged.db")
			storagetest.Garble(t, good, path, page, seed)
			db, err := storage.Open(context.Background(), path, storage.Options{})
			if err != nil {
				if !errors.Is(err, storage.ErrDamaged) {
					t.Errorf("page %d: Open error %v, want ErrDamaged", page, err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("page %d: error %q does not name the file", page, err)
				}
				refused++
				continue
			}
			if err := use(db); err != nil {
				failedInUse++
				t.Errorf("page %d seed %d: Open found nothing, then: %v", page, seed, err)
				if !errors.Is(err, storage.ErrDamaged) || db.DamageErr() == nil {
					t.Errorf("page %d: error is not ErrDamaged or not announced: %v", page, err)
				}
			} else {
				fine++
			}
			db.Close()
		}
	}
	t.Logf("%d pages, %d garbled copies: %d refused at Open, %d harmless (free pages, a spare meta page), %d failed in use", pages, tries, refused, fine, failedInUse)
	if refused < tries*3/4 {
		t.Errorf("only %d of %d garbled copies were refused", refused, tries)
	}
}

// TestSalvage repairs garbled copies: the new file opens and works, holds
// most of what was stored, and the damaged file is kept as it was.
func TestSalvage(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	want := storagetest.Used(t, good)
	pages := storagetest.Pages(t, good)
	now := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	var repaired, keptShares int
	for page := 0; page < pages; page += 5 {
		path := filepath.Join(dir, "doorman.db")
		storagetest.Garble(t, good, path, page, 1)
		damaged, _ := os.ReadFile(path)
		rep, err := storage.Salvage(context.Background(), path, now)
		if errors.Is(err, storage.ErrNotDamaged) {
			continue
		}
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		repaired++
		if kept, err := os.ReadFile(rep.Copy); err != nil || !bytes.Equal(kept, damaged) {
			t.Errorf("page %d: the damaged file is not kept as %s: %v", page, rep.Copy, err)
		}
		os.Remove(rep.Copy)
		db, err := storage.Open(context.Background(), path, storage.Options{})
		if err != nil {
			t.Fatalf("page %d: the repaired file does not open: %v", page, err)
		}
		if err := use(db); err != nil {
			t.Errorf("page %d: the repaired file does not work: %v", page, err)
		}
		db.View(func(tx *storage.Tx) error {
			shares, _, _, _ := tx.Count()
			keptShares += shares - 1 // use added one
			return nil
		})
		// New IDs do not reuse the IDs of kept alerts.
		db.Update(func(tx *storage.Tx) error {
			alerts, err := tx.Alerts()
			if err != nil || len(alerts) == 0 {
				return err
			}
			a := &storage.Alert{Kind: storage.AlertNew}
			if err := tx.PutAlert(a); err != nil {
				return err
			}
			if last := alerts[len(alerts)-1].ID; a.ID <= last {
				t.Errorf("page %d: a new alert got ID %d, the ID of a kept one (up to %d)", page, a.ID, last)
			}
			return nil
		})
		db.Close()
	}
	if repaired == 0 {
		t.Fatal("nothing was repaired")
	}
	t.Logf("%d files repaired, keeping %.0f%% of the shares on average", repaired, 100*float64(keptShares)/float64(repaired*want.Shares))
	if keptShares < repaired*want.Shares/2 {
		t.Errorf("repairs kept %d shares of %d", keptShares, repaired*want.Shares)
	}
}

func TestSalvageRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "doorman.db")
	storagetest.Used(t, path)
	if _, err := storage.Salvage(context.Background(), path, time.Now()); !errors.Is(err, storage.ErrNotDamaged) {
		t.Errorf("a sound file: %v, want ErrNotDamaged", err)
	}
	db, err := storage.Open(context.Background(), path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := storage.Salvage(ctx, path, time.Now()); !errors.Is(err, storage.ErrInUse) {
		t.Errorf("a file in use: %v, want ErrInUse", err)
	}
	if _, err := storage.Salvage(ctx, filepath.Join(dir, "none.db"), time.Now()); err == nil {
		t.Error("a missing file was repaired")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d files after refusals, want 1", len(entries))
	}
}

func TestSalvageUnreadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorman.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("shopping list\n"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := storage.Salvage(context.Background(), path, time.Now())
	if err != nil || rep.Unreadable == nil || rep.Copy == "" {
		t.Fatalf("Salvage = %+v, %v; want an empty new file and a copy", rep, err)
	}
	db, err := storage.Open(context.Background(), path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := use(db); err != nil {
		t.Error(err)
	}
}

// TestOpenCheckBudget: a file too big to check in time is checked in part
// and opens, rather than keeping doorman from starting.
func TestOpenCheckBudget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorman.db")
	storagetest.Used(t, path)
	start := time.Now()
	db, err := storage.Open(context.Background(), path, storage.Options{CheckBudget: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if took := time.Since(start); took > time.Second {
		t.Errorf("Open took %s with a budget of 1ns", took)
	}
}
