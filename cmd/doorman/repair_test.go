package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/storage/storagetest"
)

// damagedDB writes a used database with its shares' pages garbled.
func damagedDB(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	storagetest.Used(t, good)
	path := filepath.Join(dir, "doorman.db")
	for page := storagetest.Pages(t, good) / 2; ; page++ {
		storagetest.Garble(t, good, path, page, 1)
		db, err := storage.Open(context.Background(), path, storage.Options{})
		if err != nil {
			return path
		}
		db.Close()
	}
}

// TestRunDamagedDatabase: doorman run stops with one plain line naming the
// file and the way out, and exit status 1, which systemd restarts (2 is
// for settings and is not restarted). doorman repair then keeps a copy and
// leaves a file doorman opens.
func TestRunDamagedDatabase(t *testing.T) {
	path := damagedDB(t)
	damaged, _ := os.ReadFile(path)
	stdout, stderr, code := runCommand(t, nil, "run", "--db", path)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	for _, want := range []string{path + " is damaged", "doorman repair --db " + path, "keeps the damaged file"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if n := strings.Count(stderr, "\n"); n != 1 || strings.Contains(stderr, "goroutine") || stdout != "" {
		t.Errorf("want one line on stderr, got %d:\n%s\nstdout: %s", n, stderr, stdout)
	}

	stdout, stderr, code = runCommand(t, nil, "repair", "--db", path)
	if code != 0 || stderr != "" {
		t.Fatalf("repair: exit %d\n%s%s", code, stdout, stderr)
	}
	copies, _ := filepath.Glob(path + ".damaged-*")
	if len(copies) != 1 || !strings.Contains(stdout, copies[0]) {
		t.Fatalf("copies %v, output:\n%s", copies, stdout)
	}
	if kept, _ := os.ReadFile(copies[0]); !bytes.Equal(kept, damaged) {
		t.Error("the copy is not the damaged file")
	}
	for _, want := range []string{"was damaged", "shares", "rules", "start doorman again"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("repair output lacks %q:\n%s", want, stdout)
		}
	}
	db, err := storage.Open(context.Background(), path, storage.Options{})
	if err != nil {
		t.Fatalf("the repaired file does not open: %v", err)
	}
	db.Close()

	stdout, _, code = runCommand(t, nil, "repair", "--db", path)
	if code != 0 || !strings.Contains(stdout, "not damaged") {
		t.Errorf("second repair: exit %d, %q", code, stdout)
	}
	if copies, _ := filepath.Glob(path + ".damaged-*"); len(copies) != 1 {
		t.Errorf("a repair of a sound file made a copy: %v", copies)
	}
}

func TestRepairRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorman.db")
	storagetest.Used(t, path)
	db, err := storage.Open(context.Background(), path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, stderr, code := runCommand(t, nil, "repair", "--db", path)
	if code != 1 || !strings.Contains(stderr, "stop it first") {
		t.Errorf("repair of a file in use: exit %d, %q", code, stderr)
	}
	_, stderr, code = runCommand(t, nil, "repair", "--db", filepath.Join(t.TempDir(), "none.db"))
	if code != 1 || !strings.Contains(stderr, "none.db") {
		t.Errorf("repair of a missing file: exit %d, %q", code, stderr)
	}
	if _, _, code := runCommand(t, nil, "repair", "--no-such-flag"); code != exitUsage {
		t.Errorf("a bad flag: exit %d, want %d", code, exitUsage)
	}
}

// TestPanicsExitOne: a panic in a part of doorman ends doorman with an
// error (exit status 1), not Go's status 2.
func TestPanicsExitOne(t *testing.T) {
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	err := runParts(context.Background(), logger, []func(context.Context) error{
		func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		func(context.Context) error { panic("a part went wrong") },
	})
	if err == nil || !strings.Contains(err.Error(), "a bug in doorman") {
		t.Errorf("runParts = %v, want the panic as an error", err)
	}
	if !strings.Contains(log.String(), "stack=") {
		t.Errorf("the log has no stack:\n%s", log.String())
	}
	func() {
		defer logPanic(logger, "testing")
		panic("boom")
	}()
	if !strings.Contains(log.String(), "while testing") {
		t.Errorf("logPanic logged nothing:\n%s", log.String())
	}
}

func TestQuietUnwritable(t *testing.T) {
	unwritable := &os.PathError{Op: "write", Path: "doorman.db", Err: errors.New("no space left on device")}
	saveErr := errors.Join(storage.ErrUnwritable, unwritable)
	tests := []struct {
		name  string
		level slog.Level
		log   func(*slog.Logger)
		want  string // "" for nothing
	}{
		{"unwritable is quiet", slog.LevelInfo, func(l *slog.Logger) { l.Error("unable to process a listing", "err", saveErr) }, ""},
		{"unwritable bound with With", slog.LevelInfo, func(l *slog.Logger) { l.With("err", saveErr).Warn("unable to record a delivery") }, ""},
		{"unwritable in a group", slog.LevelInfo, func(l *slog.Logger) { l.Error("x", slog.Group("g", "err", saveErr)) }, ""},
		{"shown at debug", slog.LevelDebug, func(l *slog.Logger) { l.Error("unable to process a listing", "err", saveErr) }, "level=DEBUG"},
		{"other errors stay", slog.LevelInfo, func(l *slog.Logger) { l.Error("unable to process a listing", "err", errors.New("router gone")) }, "level=ERROR"},
		{"damage stays", slog.LevelInfo, func(l *slog.Logger) { l.Error("x", "err", storage.ErrDamaged) }, "level=ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			tt.log(slog.New(newQuietUnwritable(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: tt.level}))))
			if tt.want == "" && out.Len() > 0 || tt.want != "" && !strings.Contains(out.String(), tt.want) {
				t.Errorf("logged %q, want %q", out.String(), tt.want)
			}
		})
	}
}

// TestUnrecoveredPanicIsNoStatus2 runs this test binary again as a doorman
// whose goroutine panics with nothing to recover it: it must die by
// SIGABRT, which systemd restarts, not exit with status 2, which the unit
// keeps for bad settings.
func TestUnrecoveredPanicIsNoStatus2(t *testing.T) {
	if os.Getenv("DOORMAN_TEST_PANIC_CHILD") == "1" {
		crashOnPanic()
		// No core file from a test.
		if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			panic("a watcher loop went wrong")
		}()
		<-done
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnrecoveredPanicIsNoStatus2$")
	cmd.Env = append(os.Environ(), "DOORMAN_TEST_PANIC_CHILD=1", "GOTRACEBACK=")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the panicking child ended with %v:\n%s", err, out)
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGABRT {
		t.Errorf("the panicking child ended with %v (exit code %d), want SIGABRT:\n%s", err, exit.ExitCode(), out)
	}
	if !strings.Contains(string(out), "a watcher loop went wrong") {
		t.Errorf("the panic is not in the child's output:\n%s", out)
	}
}
