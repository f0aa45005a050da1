package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// App is a real application, from Debian's packages, that the lab runs on a
// device (lab.sh app-start) with every internet feature off. LAB.md ("Real
// apps as devices") says what each opens.
type App string

const (
	// Transmission is transmission-daemon 3.00 (miniupnpc): TCP and UDP
	// 51413 over UPnP, both "Transmission at 51413", in about 3 s (its
	// SSDP search takes 2).
	Transmission App = "transmission"
	// Syncthing is syncthing 1.19: inside TCP 22000 twice, over UPnP
	// ("syncthing-<external port>") and NAT-PMP, in about 12 s: it waits
	// its whole NAT discovery time-out (natTimeoutSeconds, 10) first.
	Syncthing App = "syncthing"
	// QBittorrent is qbittorrent-nox 4.5.2 (libtorrent 2.0): TCP and UDP
	// 40123 over PCP ("PCP MAP <nonce>"), within a second.
	QBittorrent App = "qbittorrent"
)

// program is the app's executable, which Debian's package of the same name
// installs.
func (a App) program() string {
	switch a {
	case Transmission:
		return "transmission-daemon"
	case QBittorrent:
		return "qbittorrent-nox"
	}
	return string(a)
}

// shares is how many shares the app opens at start: each of the three
// opens two.
func (a App) shares() int { return 2 }

// openWithin bounds how long the app may take to open its shares: a few
// times what it takes in the lab, for a busy CI machine.
func (a App) openWithin() time.Duration {
	if a == Syncthing {
		return 45 * time.Second
	}
	return 20 * time.Second
}

// RequireApp skips the test when the app is not installed, or fails it in
// CI, like Require.
func RequireApp(t testing.TB, app App) {
	t.Helper()
	if _, err := exec.LookPath(app.program()); err != nil {
		why := fmt.Sprintf("the lab's %s needs %s (apt-get install %s, or run ./test.sh)", app, app.program(), app.program())
		if os.Getenv("CI") == "true" {
			t.Fatalf("lab test cannot run in CI: %s", why)
		}
		t.Skipf("skipping lab test: %s", why)
	}
}

// RunningApp is an app started on a lab device.
type RunningApp struct {
	App     App
	Host    string // "dev1"..
	IP      string // the device's address
	Dir     string // the app's whole state; removed when the test ends
	lab     *Lab
	started time.Time
}

// StartApp starts app on a lab device ("dev1"..) with its state in a
// temporary directory, and stops it when the test ends. It returns once the
// app runs; WaitShares waits for its shares.
func (l *Lab) StartApp(t testing.TB, host string, app App) *RunningApp {
	t.Helper()
	RequireApp(t, app)
	n, err := strconv.Atoi(strings.TrimPrefix(host, "dev"))
	if !strings.HasPrefix(host, "dev") || err != nil || l.DeviceIP(n) == "" {
		t.Fatalf("StartApp: %q is not a device of this lab", host)
	}
	r := &RunningApp{App: app, Host: host, IP: l.DeviceIP(n), Dir: t.TempDir(), lab: l}
	r.started = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, l.script, "app-start", l.Tag, host, string(app), r.Dir).CombinedOutput(); err != nil {
		t.Fatalf("lab app-start %s on %s: %v\n%s", app, host, err, out)
	}
	// Registered after t.TempDir, so it runs before the directory goes.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", app, r.logTail(40))
		}
		r.Stop(t)
	})
	return r
}

// WaitShares waits until the router lists as many shares to the app's
// device as the app opens, and returns them with the time since the app
// started. The test fails, saying what the router lists and what the app
// logged, if they do not all appear within the app's bound.
func (r *RunningApp) WaitShares(t testing.TB) ([]UpnpcEntry, time.Duration) {
	t.Helper()
	return r.waitShares(t, r.App.openWithin())
}

func (r *RunningApp) waitShares(t testing.TB, within time.Duration) ([]UpnpcEntry, time.Duration) {
	t.Helper()
	deadline := r.started.Add(within)
	var mine []UpnpcEntry
	var listing string
	for {
		listing = r.upnpcList()
		mine = mine[:0]
		for _, e := range ParseUpnpcList(listing) {
			if e.InternalClient == r.IP {
				mine = append(mine, e)
			}
		}
		if len(mine) >= r.App.shares() {
			return mine, time.Since(r.started)
		}
		if !r.running() {
			t.Fatalf("%s on %s ended before it opened its shares (%d of %d); its log:\n%s",
				r.App, r.Host, len(mine), r.App.shares(), r.logTail(40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s opened %d of its %d shares within %s; the router lists:\n%s\n%s log:\n%s",
				r.App, r.Host, len(mine), r.App.shares(), within, listing, r.App, r.logTail(40))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Stop ends the app: TERM, so that it closes its shares as on a real
// device, then KILL after 10 s. Stopping a stopped app does nothing.
func (r *RunningApp) Stop(t testing.TB) {
	t.Helper()
	if out, err := exec.Command(r.lab.script, "app-stop", r.lab.Tag, r.Dir).CombinedOutput(); err != nil {
		t.Errorf("lab app-stop %s on %s: %v\n%s", r.App, r.Host, err, out)
	}
}

func (r *RunningApp) upnpcList() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := r.lab.Command(ctx, r.Host, "upnpc", "-u", r.lab.IGDURL, "-l")
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // a failed listing is retried, and shown if it stays so
	return out.String()
}

// running reports whether the app's process is still there.
func (r *RunningApp) running() bool {
	b, err := os.ReadFile(filepath.Join(r.Dir, "app.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && syscall.Kill(pid, 0) == nil
}

// logTail returns the end of what the app logged: its output, and for
// qBittorrent, which writes nothing there, its own log file.
func (r *RunningApp) logTail(n int) string {
	files := []string{filepath.Join(r.Dir, "app.log")}
	if r.App == QBittorrent {
		files = append(files, filepath.Join(r.Dir, "qBittorrent", "data", "logs", "qbittorrent.log"))
	}
	var b strings.Builder
	for _, f := range files {
		log, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(&b, "(no %s: %v)\n", filepath.Base(f), err)
			continue
		}
		if len(log) > 0 {
			b.WriteString(lastLines(log, n) + "\n")
		}
	}
	return b.String()
}

// WANPackets counts the IPv4 packets that reached the lab's WAN side, that
// is, that something in the lab sent towards the internet.
func (l *Lab) WANPackets(t testing.TB) int {
	t.Helper()
	out, err := exec.Command(l.script, "wan-packets", l.Tag).CombinedOutput()
	if err != nil {
		t.Fatalf("lab wan-packets: %v\n%s", err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("lab wan-packets printed %q, not a count", out)
	}
	return n
}
