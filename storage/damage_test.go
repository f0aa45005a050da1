package storage_test

import (
	"context"
	"errors"
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
