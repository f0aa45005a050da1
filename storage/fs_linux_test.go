package storage

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// smallDisk mounts a tmpfs of size bytes on a new directory, or skips the
// test where doorman's tests may not mount (not root, outside CI, which
// runs as root for the lab).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("unable to mount a tmpfs (CI runs as root): %v", err)
		}
		t.Skipf("unable to mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestDiskFull fills a real file system under an open database: saving
// fails, is logged once, and works again, with the file sound, once there
// is room.
func TestDiskFull(t *testing.T) {
	dir := smallDisk(t, "4m")
	var log bytes.Buffer
	path := filepath.Join(dir, "doorman.db")
	db, err := Open(context.Background(), path, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	filler.Close()
	big := strings.Repeat("x", 256<<10)
	var failed int
	for i := range 10 {
		err := db.Update(func(tx *Tx) error { return tx.SetMeta("big", []string{big, string(rune('a' + i))}) })
		if err == nil {
			continue
		}
		failed++
		if !errors.Is(err, ErrUnwritable) || !strings.Contains(err.Error(), "no space left") {
			t.Fatalf("Update error = %v, want ErrUnwritable: no space left", err)
		}
	}
	if failed == 0 || db.WriteFault() == nil {
		t.Fatalf("no write failed on a full disk (%d failed)", failed)
	}
	os.Remove(filepath.Join(dir, "filler"))
	if err := db.Update(func(tx *Tx) error { return tx.SetMeta("big", big) }); err != nil {
		t.Fatalf("saving after the disk has room again: %v", err)
	}
	if db.WriteFault() != nil {
		t.Error("the write fault did not end")
	}
	if n := strings.Count(log.String(), "\n"); n != 2 {
		t.Errorf("log has %d lines for %d failures, want 2 (failing, saved again):\n%s", n, failed, log.String())
	}
	db.Close()
	again, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("the file is not sound after a full disk: %v", err)
	}
	again.Close()
}

// TestReadOnlyFileSystem opens a database on a real read-only mount: it
// is read, and every write fails with the reason, logged once.
func TestReadOnlyFileSystem(t *testing.T) {
	dir := smallDisk(t, "4m")
	path := filepath.Join(dir, "doorman.db")
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { return tx.SetMeta("telegram_offset", 42) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	db, err = Open(context.Background(), path, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatalf("Open on a read-only file system: %v", err)
	}
	defer db.Close()
	var off int
	if err := db.View(func(tx *Tx) error { _, err := tx.Meta("telegram_offset", &off); return err }); err != nil || off != 42 {
		t.Errorf("reading: %d, %v", off, err)
	}
	for range 5 {
		err := db.Update(func(tx *Tx) error { return tx.SetMeta("telegram_offset", 43) })
		if !errors.Is(err, ErrUnwritable) || !strings.Contains(err.Error(), "read-only file system") {
			t.Fatalf("Update error = %v, want ErrUnwritable: read-only file system", err)
		}
	}
	if n := strings.Count(log.String(), "\n"); n != 1 {
		t.Errorf("log has %d lines, want 1:\n%s", n, log.String())
	}
}
