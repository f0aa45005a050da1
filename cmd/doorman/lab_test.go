package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/internal/lab"
)

// doormanBinary is built once by TestMain for the lab tests, which run it
// inside the lab's namespaces like a user would.
var doormanBinary string

func TestMain(m *testing.M) {
	code := func() int {
		if lab.Available() != "" && os.Getenv("CI") != "true" {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "doorman-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		doormanBinary = filepath.Join(dir, "doorman")
		if out, err := exec.Command("go", "build", "-o", doormanBinary, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building doorman: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// runDoorman runs the doorman binary on the lab's doorman host.
func runDoorman(t *testing.T, l *lab.Lab, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// env(1) sets the variables inside the namespace, after ip netns exec.
	cmd := l.Command(ctx, "doorman", "env", append(append([]string{"-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...), append([]string{doormanBinary}, args...)...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		t.Fatalf("doorman %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// addMappings opens port shares the way devices do: UPnP from dev1 with
// upnpc, NAT-PMP from dev2 with natpmpc.
func addMappings(t *testing.T, l *lab.Lab) {
	t.Helper()
	dev1 := l.DeviceIP(1)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "Plex Media Server", "-a", dev1, "32400", "32400", "TCP")
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "Transmission at 51413", "-a", dev1, "51413", "51413", "UDP", "3600")
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "game server", "-a", dev1, "7777", "27015", "UDP", "0")
	l.Run(t, "dev2", "natpmpc", "-g", l.RouterIP, "-a", "8000", "8001", "tcp", "600")
	l.Run(t, "dev2", "natpmpc", "-g", l.RouterIP, "-a", "9000", "9000", "udp", "1200")
}

func TestLabListMatchesUpnpc(t *testing.T) {
	for _, mode := range []struct {
		name      string
		opts      lab.Options
		discovery bool
	}{
		{"IGDv2 found by SSDP", lab.Options{}, true},
		{"IGDv1 by DOORMAN_IGD_URL", lab.Options{IGDv1: true}, false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			l := lab.Start(t, mode.opts)
			addMappings(t, l)

			var env []string
			if !mode.discovery {
				env = append(env, "DOORMAN_IGD_URL="+l.IGDURL)
			}
			stdout, stderr, code := runDoorman(t, l, env, "list", "--json")
			if code != 0 {
				t.Fatalf("doorman list --json exited %d: %s", code, stderr)
			}
			want := lab.ParseUpnpcList(l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-l"))
			if len(want) != 5 {
				t.Fatalf("upnpc -l shows %d entries, want the 5 added", len(want))
			}

			var got []mappingJSON
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("doorman list --json is not a JSON array: %v\n%s", err, stdout)
			}
			if len(got) != len(want) {
				t.Fatalf("doorman lists %d mappings, upnpc -l %d\ndoorman: %+v\nupnpc: %+v", len(got), len(want), got, want)
			}
			key := func(proto string, port int) string { return fmt.Sprintf("%s/%d", proto, port) }
			byKey := map[string]mappingJSON{}
			for _, m := range got {
				byKey[key(m.Protocol, int(m.ExternalPort))] = m
			}
			for _, w := range want {
				m, ok := byKey[key(w.Protocol, w.ExternalPort)]
				if !ok {
					t.Errorf("doorman does not list %s %d", w.Protocol, w.ExternalPort)
					continue
				}
				if m.InternalClient != w.InternalClient || int(m.InternalPort) != w.InternalPort ||
					m.Description != w.Description || m.RemoteHost != w.RemoteHost || m.Router != l.RouterID || !m.Enabled {
					t.Errorf("%s %d:\ndoorman %+v\n  upnpc %+v", w.Protocol, w.ExternalPort, m, w)
				}
				// Leases count down between the two listings.
				if d := m.LeaseDuration - int64(w.LeaseDuration); d > 2 || d < -5 {
					t.Errorf("%s %d: lease %d, upnpc says %d", w.Protocol, w.ExternalPort, m.LeaseDuration, w.LeaseDuration)
				}
				wantOrigin := "upnp"
				if strings.HasPrefix(w.Description, "NAT-PMP ") {
					wantOrigin = "nat-pmp"
				}
				if m.Origin != wantOrigin {
					t.Errorf("%s %d: origin %q, want %q", w.Protocol, w.ExternalPort, m.Origin, wantOrigin)
				}
			}
			table, stderr, code := runDoorman(t, l, env, "list")
			if code != 0 {
				t.Fatalf("doorman list exited %d: %s", code, stderr)
			}
			for _, s := range []string{"Plex Media Server", l.DeviceIP(1) + ":32400", "NAT-PMP 8000 tcp", "nat-pmp", "5 port share(s)."} {
				if !strings.Contains(table, s) {
					t.Errorf("doorman list does not show %q:\n%s", s, table)
				}
			}
		})
	}
}

func TestLabNoRouter(t *testing.T) {
	l := lab.Start(t, lab.Options{Devices: 1})
	l.Router(t, "stop-router")
	tests := []struct {
		name    string
		env     []string
		mention []string
	}{
		{"discovery", nil, []string{"no router found", "default gateway " + l.RouterIP, "DOORMAN_IGD_URL"}},
		{"configured URL", []string{"DOORMAN_IGD_URL=" + l.IGDURL}, []string{"no router found", l.IGDURL, "connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runDoorman(t, l, tt.env, "list")
			if code == 0 {
				t.Fatalf("doorman list exited 0 with no router:\n%s", stdout)
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
				t.Errorf("want a one-line error, got %d lines:\n%s", lines, stderr)
			}
			for _, s := range tt.mention {
				if !strings.Contains(stderr, s) {
					t.Errorf("error does not mention %q: %s", s, stderr)
				}
			}
		})
	}
}
