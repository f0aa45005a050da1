package watcher

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestWatchForgedAnnouncementStorm: any LAN device can send SSDP with the
// router's address as source. Alternating byebyes and alives with new
// BOOTIDs, as fast as the socket takes them, once made 156 full listings
// in 2 s; now they make at most one re-listing per relistInterval.
func TestWatchForgedAnnouncementStorm(t *testing.T) {
	var rows []PortMappingEntry
	for i := range 20 {
		rows = append(rows, row("TCP", 20000+i, "192.168.77.21", 20000+i, fmt.Sprint("share ", i)))
	}
	igd := newTableIGD(t, rows...)
	h := startWatch(t, igd, WatchConfig{})
	h.next(3*time.Second, "start", reason(ReasonStart))
	h.waitStatus(time.Second, "with events", func(s ServiceStatus) bool { return s.Events })
	listed := igd.count("GetGenericPortMappingEntry")
	goroutines := runtime.NumGoroutine()

	start := time.Now()
	sent := 0
	for i := 0; time.Since(start) < 2*time.Second; i++ {
		h.sendSSDP(strings.Replace(ssdpByebye, "BOOTID.UPNP.ORG: 1", fmt.Sprint("BOOTID.UPNP.ORG: ", 100+i), 1))
		h.sendSSDP(strings.ReplaceAll(ssdpAlive(fmt.Sprint(1000+i)), "{{LOC}}", igd.URL()))
		sent += 2
		time.Sleep(time.Millisecond)
	}
	// Whatever the LAN sends, the watcher's goroutines stay what they
	// were (a listing in flight, an HTTP connection or two aside).
	if n := runtime.NumGoroutine(); n > goroutines+10 {
		t.Errorf("%d goroutines after the storm, %d before", n, goroutines)
	}
	// The one restart the storm may cause is listed within a few seconds.
	listings := 0
	deadline := time.After(3 * time.Second)
collect:
	for {
		select {
		case s := <-h.snaps:
			listings++
			if s.Reason != ReasonRouterRestart {
				t.Errorf("listing for %q during the storm", s.Reason)
			}
		case <-deadline:
			break collect
		}
	}
	requests := igd.count("GetGenericPortMappingEntry") - listed
	t.Logf("%d forged announcements in 2 s: %d listings, %d GetGenericPortMappingEntry requests, %d SUBSCRIBEs", sent, listings, requests, igd.genaCount("SUBSCRIBE"))
	if listings > 1 {
		t.Errorf("%d listings during the storm, want at most 1", listings)
	}
	if max := 2 * (len(rows) + 1 + listWindow); requests > max {
		t.Errorf("%d listing requests during the storm, want at most %d (one listing)", requests, max)
	}
}

// TestWatchMovedDescription: an alive that moves the description to
// another port is believed once doorman has found the router there; shares
// keep their router identity either way.
func TestWatchMovedDescription(t *testing.T) {
	tests := []struct {
		name string
		// there returns what serves the announced URL, "" for nothing.
		there   func(t *testing.T) string
		believe bool
	}{
		{"the router moved", func(t *testing.T) string { return newTableIGD(t).URL() }, true},
		{"another device is there", func(t *testing.T) string {
			other := newTableIGD(t)
			other.description = strings.ReplaceAll(miniupnpdDescription, fakeUDN, "uuid:66666666-0000-0000-0000-000000000000")
			return other.URL()
		}, false},
		{"nothing is there", func(t *testing.T) string {
			gone := newTableIGD(t)
			u := gone.URL()
			gone.srv.Close()
			return u
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			igd := newTableIGD(t, row("TCP", 8080, "192.168.77.21", 80, "cam"))
			h := startWatch(t, igd, WatchConfig{})
			s := h.next(3*time.Second, "start", reason(ReasonStart))
			id := s.Gateway.ID
			moved := tt.there(t)
			h.sendSSDP(strings.ReplaceAll(ssdpAlive("1"), "{{LOC}}", moved))
			s = h.next(15*time.Second, "router-restart listing", reason(ReasonRouterRestart))
			got := h.w.Gateways()[0]
			if tt.believe != (got.URL == moved) {
				t.Errorf("watching %s after an alive at %s; believed %v, want %v", got.URL, moved, got.URL == moved, tt.believe)
			}
			if got.ID != id || s.Gateway.ID != id {
				t.Errorf("router identity %s after the move, want %s", got.ID, id)
			}
			for _, m := range s.Mappings {
				if m.Router != id {
					t.Errorf("mapping on %s, want %s", m.Router, id)
				}
			}
		})
	}
}
