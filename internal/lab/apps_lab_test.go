package lab

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does, so that a test can check what a
// helper says when it fails.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalRecorder) Helper() {}

// recordFatal runs fn with a recorder and returns what it failed with, ""
// if it did not fail.
func recordFatal(t *testing.T, fn func(tb testing.TB)) string {
	f := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

// An app that does not open its shares in time, or ends first, fails the
// test with a message that says so and shows what the router lists and
// what the app logged.
func TestLabAppFailures(t *testing.T) {
	RequireApp(t, QBittorrent)
	l := Start(t, Options{Devices: 2})

	t.Run("no shares within the bound", func(t *testing.T) {
		l.Router(t, "stop-router")
		defer l.Router(t, "start-router")
		r := l.StartApp(t, "dev1", QBittorrent)
		msg := recordFatal(t, func(tb testing.TB) { r.waitShares(tb, time.Second) })
		for _, want := range []string{"qbittorrent on dev1 opened 0 of its 2 shares within 1s", "the router lists:", "qbittorrent log:", "qBittorrent"} {
			if !strings.Contains(msg, want) {
				t.Errorf("WaitShares failed with %q, which lacks %q", msg, want)
			}
		}
	})

	t.Run("ended before its shares", func(t *testing.T) {
		l.Router(t, "stop-router")
		defer l.Router(t, "start-router")
		r := l.StartApp(t, "dev2", QBittorrent)
		r.Stop(t)
		msg := recordFatal(t, func(tb testing.TB) { r.waitShares(tb, time.Minute) })
		if !strings.Contains(msg, "qbittorrent on dev2 ended before it opened its shares (0 of 2)") {
			t.Errorf("WaitShares failed with %q, want that the app ended", msg)
		}
	})

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown app", []string{"dev1", "deluge"}, "unknown app 'deluge'"},
		{"not a device", []string{"doorman", "syncthing"}, "apps run on a device (dev1..devN), not 'doorman'"},
		{"no such device", []string{"dev9", "syncthing"}, "no namespace"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"app-start", l.Tag}, tt.args...), t.TempDir())
			out, err := exec.Command(l.script, args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("lab.sh %s: %v, %q; want a failure saying %q", strings.Join(args, " "), err, out, tt.want)
			}
		})
	}
}
