// Package storagetest helps tests that need a real database: a new one, a
// used one with data in every bucket, and damaged copies of it.
package storagetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// Open opens a new database in a temporary directory, closed when the test
// ends.
func Open(t testing.TB) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "doorman.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("closing the test database: %v", err)
		}
	})
	return db
}

// PageSize is the page size of the files Used writes (bbolt takes the OS
// page size, 4096 on the platforms doorman runs on).
var PageSize = os.Getpagesize()

// Contents is what Used stored.
type Contents struct {
	Shares, Rules, Alerts, Outbox int
}

// Used writes a database at path as a doorman that ran for a while leaves
// it: shares on two routers, trust and block rules, alerts (some batched),
// outbox items and meta values, through the storage API, spread over many
// pages.
func Used(t testing.TB, path string) Contents {
	t.Helper()
	db, err := storage.Open(context.Background(), path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const router = "http://192.168.1.1:5000/rootDesc.xml"
	var c Contents
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for i := range 300 {
		err := db.Update(func(tx *storage.Tx) error {
			m := watcher.Mapping{
				Router: router, Service: "urn:schemas-upnp-org:service:WANIPConnection:2",
				Protocol: "TCP", ExternalPort: uint16(10000 + i), InternalClient: fmt.Sprintf("192.168.1.%d", 10+i%200),
				InternalPort: uint16(8000 + i), Enabled: true, Description: fmt.Sprintf("app %d on a device with a long name", i),
				Origin: watcher.OriginUPnP,
			}
			if i%7 == 0 {
				m.Router = "http://192.168.1.254:49000/igddesc.xml"
			}
			a := &storage.Alert{Kind: storage.AlertNew, State: storage.AlertPending, CreatedAt: at, ChatID: 42, MessageID: i + 1}
			if err := tx.PutAlert(a); err != nil {
				return err
			}
			if err := tx.PutShare(storage.Share{Mapping: m, FirstSeen: at, LastSeen: at.Add(time.Hour), AlertID: a.ID}); err != nil {
				return err
			}
			c.Shares++
			c.Alerts++
			if i%5 == 0 {
				kind := storage.RuleTrust
				if i%10 == 0 {
					kind = storage.RuleBlock
				}
				if err := tx.PutRule(&storage.Rule{Kind: kind, Service: storage.ServiceOf(m), Example: m, CreatedAt: at, CreatedBy: storage.User{ID: 7, Name: "Owner"}}); err != nil {
					return err
				}
				c.Rules++
			}
			if i%3 == 0 {
				if err := tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxAlert, AlertID: a.ID, ChatID: 42, CreatedAt: at}); err != nil {
					return err
				}
				c.Outbox++
			}
			return tx.SetMeta("telegram_offset", 1000+i)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// Pages returns the number of pages of the file at path.
func Pages(t testing.TB, path string) int {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size()) / PageSize
}

// Garble copies src to dst with page page overwritten by bytes from seed.
func Garble(t testing.TB, src, dst string, page int, seed uint64) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, uint64(page)))
	for i := page * PageSize; i < (page+1)*PageSize && i < len(raw); i++ {
		raw[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(dst, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
