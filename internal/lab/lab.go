// Package lab runs end-to-end tests against the real miniupnpd: it drives
// deploy/lab/lab.sh, which builds a home network in network namespaces.
//
// The lab needs root and the packages miniupnpd-nftables, miniupnpc, natpmpc,
// nftables and iproute2; the real apps (apps.go) need transmission-daemon,
// syncthing and qbittorrent-nox. Without them a lab test is skipped with a
// message saying what is missing, except in CI (CI=true), where a skipped lab
// test would hide that nothing was tested, so it fails instead.
package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Options choose the router's mode.
type Options struct {
	IGDv1     bool // serve IGDv1 only (force_igd_desc_v1)
	Secure    bool // secure_mode: hosts may only map and delete for themselves
	Debug     bool // miniupnpd -d: log every request (slow, see LAB.md)
	LeaseFile bool // keep leases across router restarts
	Devices   int  // device namespaces, 1 to 9; default 2
}

// Lab is one running lab.
type Lab struct {
	Tag       string
	Dir       string
	RouterIP  string
	DoormanIP string
	IGDURL    string
	// RouterID is the lab router's identity as doorman names it
	// (watcher.RouterID: "uuid:…@192.168.77.1").
	RouterID string
	script   string
	env      map[string]string
}

// Available reports why the lab cannot run here, or "" if it can.
func Available() string {
	if runtime.GOOS != "linux" {
		return "the lab needs Linux network namespaces"
	}
	if os.Geteuid() != 0 {
		return "the lab needs root (network namespaces); run the tests as root, e.g. sudo ./test.sh"
	}
	var missing []string
	for _, tool := range []string{"ip", "nft", "miniupnpd", "upnpc", "natpmpc"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return "the lab needs " + strings.Join(missing, ", ") + " (apt-get install miniupnpd-nftables miniupnpc natpmpc nftables iproute2, or run ./test.sh)"
	}
	return ""
}

// Require skips the test when the lab cannot run, or fails it in CI.
func Require(t testing.TB) {
	t.Helper()
	if why := Available(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("lab test cannot run in CI: %s", why)
		}
		t.Skipf("skipping lab test: %s", why)
	}
}

// Start builds a lab and tears it down when the test ends.
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	Require(t)
	l := &Lab{Tag: newTag(), script: Script()}
	args := []string{"up", l.Tag}
	if opts.IGDv1 {
		args = append(args, "--igdv1")
	}
	if opts.Secure {
		args = append(args, "--secure")
	}
	if opts.Debug {
		args = append(args, "--debug")
	}
	if opts.LeaseFile {
		args = append(args, "--lease-file")
	}
	if opts.Devices > 0 {
		args = append(args, "--devices", fmt.Sprint(opts.Devices))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, l.script, args...).CombinedOutput()
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(l.Dir, "miniupnpd.log")); err == nil && len(log) > 0 {
				t.Logf("miniupnpd log:\n%s", lastLines(log, 60))
			}
		}
		if out, err := exec.Command(l.script, "down", l.Tag).CombinedOutput(); err != nil {
			t.Errorf("lab down %s: %v\n%s", l.Tag, err, out)
		}
	})
	if err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	l.env = parseEnv(out)
	l.Dir = l.env["LAB_DIR"]
	l.RouterIP = l.env["LAB_ROUTER_IP"]
	l.DoormanIP = l.env["LAB_DOORMAN_IP"]
	l.IGDURL = l.env["LAB_IGD_URL"]
	if l.IGDURL == "" {
		t.Fatalf("lab up printed no LAB_IGD_URL:\n%s", out)
	}
	l.RouterID = "uuid:" + l.env["LAB_ROUTER_UUID"] + "@" + l.RouterIP
	return l
}

// DeviceIP returns the address of device n (1-based).
func (l *Lab) DeviceIP(n int) string { return l.env[fmt.Sprintf("LAB_DEV%d_IP", n)] }

// Command returns a command that runs in a lab host's namespace: "router",
// "doorman", "dev1".., or "wan".
func (l *Lab) Command(ctx context.Context, host string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, l.script, append([]string{"exec", l.Tag, host, name}, args...)...)
}

// Run runs a command in a lab host's namespace and returns its standard
// output; the test fails if it fails.
func (l *Lab) Run(t testing.TB, host string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.Command(ctx, host, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s on %s: %v\nstdout:\n%s\nstderr:\n%s", name, host, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// Router runs lab.sh's router commands: "restart-router", "stop-router",
// "start-router", and "move-router" with the new HTTP port.
func (l *Lab) Router(t testing.TB, verb string, args ...string) {
	t.Helper()
	if out, err := exec.Command(l.script, append([]string{verb, l.Tag}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("lab %s: %v\n%s", verb, err, out)
	}
}

// Script returns the path of deploy/lab/lab.sh in this checkout.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "lab", "lab.sh")
}

func newTag() string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

func parseEnv(out []byte) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "LAB_") {
			env[k] = v
		}
	}
	return env
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// UpnpcEntry is one line of `upnpc -l`.
type UpnpcEntry struct {
	Protocol       string
	ExternalPort   int
	InternalClient string
	InternalPort   int
	Description    string
	RemoteHost     string
	LeaseDuration  int
}

// upnpcLine matches miniupnpc's listing format:
//
//	1 TCP 18080->192.168.77.21:8080  'test app' '' 604800
var upnpcLine = regexp.MustCompile(`^\s*\d+\s+(TCP|UDP)\s+(\d+)->([0-9.]+):(\d+)\s+'(.*)'\s+'(.*)'\s+(\d+)\s*$`)

// ParseUpnpcList reads the entries of `upnpc -l` output.
func ParseUpnpcList(out string) []UpnpcEntry {
	var es []UpnpcEntry
	for _, line := range strings.Split(out, "\n") {
		m := upnpcLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ext, _ := strconv.Atoi(m[2])
		in, _ := strconv.Atoi(m[4])
		lease, _ := strconv.Atoi(m[7])
		es = append(es, UpnpcEntry{m[1], ext, m[3], in, m[5], m[6], lease})
	}
	return es
}
