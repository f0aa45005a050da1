package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/identify"
	"github.com/doorman-upnp/doorman/internal/lab"
	"github.com/doorman-upnp/doorman/watcher"
)

// wantShare is one share a real app opens, as doorman must list it. A
// description pattern may use EXT for the share's own external port.
type wantShare struct {
	protocol     string
	externalPort int // 0: any (the router or the app picks one)
	internalPort int
	description  string // a regular expression, anchored
	origin       watcher.Origin
	app, why     string // what identify.AppOf says
}

// TestLabRealApps runs Transmission, Syncthing and qBittorrent from
// Debian's packages, each on its own device, all at once, and checks that
// doorman lists exactly the shares each opened, with the protocol that
// opened it, and that identify names the app where its description or
// port tells.
func TestLabRealApps(t *testing.T) {
	apps := []struct {
		host     string
		app      lab.App
		peerPort int // the only TCP port it may listen on beyond loopback
		want     []wantShare
	}{
		// qBittorrent's port is its own choice here (its default is random)
		// and miniupnpd writes the description: nothing names the app, so
		// identify says only what the protocol suggests.
		{"dev1", lab.QBittorrent, 40123, []wantShare{
			{"TCP", 40123, 40123, `PCP MAP [0-9a-f]{24}`, watcher.OriginPCP, "PCP client (often an Apple device)", "opened with PCP"},
			{"UDP", 40123, 40123, `PCP MAP [0-9a-f]{24}`, watcher.OriginPCP, "PCP client (often an Apple device)", "opened with PCP"},
		}},
		{"dev2", lab.Transmission, 51413, []wantShare{
			{"TCP", 51413, 51413, `Transmission at 51413`, watcher.OriginUPnP, "Transmission (BitTorrent)", `description "Transmission at 51413"`},
			{"UDP", 51413, 51413, `Transmission at 51413`, watcher.OriginUPnP, "Transmission (BitTorrent)", `description "Transmission at 51413"`},
		}},
		{"dev3", lab.Syncthing, 22000, []wantShare{
			{"TCP", 0, 22000, `NAT-PMP EXT tcp`, watcher.OriginNATPMP, "Syncthing", "port 22000/TCP"},
			{"TCP", 0, 22000, `syncthing-EXT`, watcher.OriginUPnP, "Syncthing", `description "syncthing-EXT"`},
		}},
	}
	t.Parallel()
	for _, a := range apps {
		lab.RequireApp(t, a.app)
	}
	l := lab.Start(t, lab.Options{Devices: len(apps)})

	// All at once, each in its own namespace: together they take as long
	// as the slowest (Syncthing). They are waited for quickest first, so
	// that each time logged is the app's own.
	begin := time.Now()
	running := make([]*lab.RunningApp, len(apps))
	for i, a := range apps {
		running[i] = l.StartApp(t, a.host, a.app)
	}
	for _, r := range running {
		_, took := r.WaitShares(t)
		t.Logf("%s opened its shares %.1f s after it started", r.App, took.Seconds())
	}
	t.Logf("all three apps had their shares open after %.1f s", time.Since(begin).Seconds())

	stdout, stderr, code := runDoorman(t, l, nil, "list", "--json")
	if code != 0 {
		t.Fatalf("doorman list --json exited %d: %s", code, stderr)
	}
	var listed []mappingJSON
	if err := json.Unmarshal([]byte(stdout), &listed); err != nil {
		t.Fatalf("doorman list --json is not a JSON array: %v\n%s", err, stdout)
	}
	byClient := map[string][]mappingJSON{}
	for _, m := range listed {
		byClient[m.InternalClient] = append(byClient[m.InternalClient], m)
	}
	for i, a := range apps {
		t.Run(string(a.app), func(t *testing.T) {
			got := byClient[running[i].IP]
			delete(byClient, running[i].IP)
			checkAppShares(t, got, a.want)
			checkLoopbackOnly(t, l, a.host, a.peerPort)
		})
	}
	for client, ms := range byClient {
		t.Errorf("doorman lists shares to %s, where no app ran: %+v", client, ms)
	}

	table, stderr, code := runDoorman(t, l, []string{"DOORMAN_IGD_URL=" + l.IGDURL}, "list")
	if code != 0 {
		t.Fatalf("doorman list exited %d: %s", code, stderr)
	}
	for _, s := range []string{"Transmission at 51413", "syncthing-", "NAT-PMP ", "PCP MAP ", " pcp ", " nat-pmp ", "6 port share(s)."} {
		if !strings.Contains(table, s) {
			t.Errorf("doorman list does not show %q:\n%s", s, table)
		}
	}

	// Every internet feature is off and each device's DNS is its own
	// loopback: nothing the apps did may have left the lab.
	if n := l.WANPackets(t); n != 0 {
		t.Errorf("%d packets reached the lab's WAN side while the apps ran; nothing may leave the lab", n)
	}

	// Stopped together rather than one after the other by the clean-ups:
	// each takes a few seconds to close its shares.
	stop := time.Now()
	var wg sync.WaitGroup
	for _, r := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Stop(t)
		}()
	}
	wg.Wait()
	t.Logf("the apps stopped in %.1f s", time.Since(stop).Seconds())
}

// checkAppShares checks that got holds exactly the shares want describes.
func checkAppShares(t *testing.T, got []mappingJSON, want []wantShare) {
	t.Helper()
	sort.Slice(got, func(i, j int) bool {
		if got[i].Protocol != got[j].Protocol {
			return got[i].Protocol < got[j].Protocol
		}
		return got[i].Description < got[j].Description
	})
	if len(got) != len(want) {
		t.Fatalf("doorman lists %d shares, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		m := got[i]
		ext := fmt.Sprint(m.ExternalPort)
		desc := regexp.MustCompile("^" + strings.ReplaceAll(w.description, "EXT", ext) + "$")
		if m.Protocol != w.protocol || (w.externalPort != 0 && int(m.ExternalPort) != w.externalPort) ||
			int(m.InternalPort) != w.internalPort || !desc.MatchString(m.Description) || !m.Enabled || m.RemoteHost != "" {
			t.Errorf("share %d: doorman lists %+v, want %s %d→%d described %q", i, m, w.protocol, w.externalPort, w.internalPort, desc)
		}
		if watcher.Origin(m.Origin) != w.origin {
			t.Errorf("%s %d %q: origin %q, want %q", m.Protocol, m.ExternalPort, m.Description, m.Origin, w.origin)
		}
		app, ok := identify.AppOf(watcher.Mapping{
			Protocol: m.Protocol, ExternalPort: m.ExternalPort, InternalClient: m.InternalClient,
			InternalPort: m.InternalPort, Description: m.Description, Origin: watcher.Origin(m.Origin),
		})
		wantWhy := strings.ReplaceAll(w.why, "EXT", ext)
		if !ok || app.Name != w.app || app.Why != wantWhy {
			t.Errorf("%s %d %q: identify.AppOf says %q (%s), %v; want %q (%s)", m.Protocol, m.ExternalPort, m.Description, app.Name, app.Why, ok, w.app, wantWhy)
		}
	}
}

// checkLoopbackOnly checks that on host nothing but the app's peer port
// listens for TCP beyond the device's loopback: the web UI stays on it.
func checkLoopbackOnly(t *testing.T, l *lab.Lab, host string, peerPort int) {
	t.Helper()
	out := l.Run(t, host, "ss", "-Hltn")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		local := f[3] // 127.0.0.1:9091, [::]:22000, 127.0.0.1%lo:40123
		i := strings.LastIndex(local, ":")
		addr, port := local[:i], local[i+1:]
		if port == fmt.Sprint(peerPort) {
			continue
		}
		addr, _, _ = strings.Cut(strings.Trim(addr, "[]"), "%")
		if addr != "127.0.0.1" && addr != "::1" {
			t.Errorf("%s listens on %s beyond loopback:\n%s", host, local, out)
		}
	}
}
