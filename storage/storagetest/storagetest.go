// Package storagetest helps tests that need a real database.
package storagetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/doorman-upnp/doorman/storage"
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
