package watcher

import (
	"cmp"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRestartDetector(t *testing.T) {
	const (
		routerUDN = "uuid:aaaaaaaa-0000-0000-0000-000000000001"
		wanUDN    = "uuid:aaaaaaaa-0000-0000-0000-000000000002"
		otherUDN  = "uuid:bbbbbbbb-0000-0000-0000-000000000001"
		descURL   = "http://192.168.1.1:5000/rootDesc.xml"
		movedURL  = "http://192.168.1.1:5001/rootDesc.xml"
		twinURL   = "http://192.168.1.1:5000/igddesc.xml"
	)
	alive := func(udn, loc, boot string) ssdpMessage {
		return ssdpMessage{NTS: "ssdp:alive", NT: "upnp:rootdevice", USN: udn + "::upnp:rootdevice", Location: loc, BootID: boot}
	}
	byebye := func(udn, boot string) ssdpMessage {
		return ssdpMessage{NTS: "ssdp:byebye", NT: "upnp:rootdevice", USN: udn + "::upnp:rootdevice", BootID: boot}
	}
	update := func(udn, boot, next string) ssdpMessage {
		return ssdpMessage{NTS: "ssdp:update", NT: "upnp:rootdevice", USN: udn + "::upnp:rootdevice", Location: descURL, BootID: boot, NextBootID: next}
	}
	type step struct {
		at      time.Duration // since the start
		msg     ssdpMessage
		want    restartKind
		wantWhy string // part of action.why
	}
	tests := []struct {
		name string
		// known is a BOOTID seen before the steps, "" for none.
		known string
		// lost calls subscriptionsLost before the steps.
		lost  bool
		steps []step
		// wantURL is the description URL restartLocation gives after the
		// steps ("" for descURL).
		wantURL string
	}{
		{
			name:  "restarts come at most once per relistInterval; the rest wait, as one",
			known: "7",
			steps: []step{
				{0, alive(routerUDN, descURL, "8"), routerRestarted, "changed from 7 to 8"},
				{2 * time.Second, byebye(routerUDN, "8"), routerLeaving, ""},
				{4 * time.Second, alive(routerUDN, descURL, "9"), restartDeferred, "back after ssdp:byebye"},
				{5 * time.Second, byebye(routerUDN, "9"), routerLeaving, ""},
				{7 * time.Second, alive(routerUDN, descURL, "10"), announcementIgnored, ""},
				{8 * time.Second, alive(routerUDN, descURL, "11"), announcementIgnored, ""},
				{relistInterval, deferredRestartDue, routerRestarted, "changed from 10 to 11"},
				{relistInterval + time.Second, deferredRestartDue, announcementIgnored, ""},
				{relistInterval + 2*time.Second, alive(routerUDN, descURL, "12"), restartDeferred, "changed from 11 to 12"},
				{2 * relistInterval, deferredRestartDue, routerRestarted, "changed from 11 to 12"},
				{3*relistInterval + time.Second, alive(routerUDN, descURL, "13"), routerRestarted, "changed from 12 to 13"},
			},
		},
		{
			name:  "another spelling of the description's URL moves nothing",
			known: "7",
			steps: []step{
				{0, alive(routerUDN, "http://192.168.1.1:05000/rootDesc.xml", "7"), announcementIgnored, ""},
				{time.Second, alive(routerUDN, "http://192.168.1.1:5000//rootDesc.xml?x", "7"), announcementIgnored, ""},
				{2 * time.Second, alive(routerUDN, "HTTP://[::ffff:192.168.1.1]:5000/./rootDesc.xml", "7"), announcementIgnored, ""},
			},
		},
		{
			name:  "the twin description's URL moves nothing",
			known: "7",
			steps: []step{
				{0, alive(routerUDN, twinURL, "7"), announcementIgnored, ""},
				{time.Second, alive(otherUDN, twinURL, "7"), announcementIgnored, ""},
				{2 * time.Second, alive(routerUDN, twinURL, "8"), routerRestarted, "changed from 7 to 8"},
			},
		},
		{
			name: "first alive cannot tell, then the same BOOTID means nothing",
			steps: []step{
				{0, alive(routerUDN, descURL, "7"), checkSubscriptions, ""},
				{250 * time.Millisecond, alive(routerUDN, descURL, "7"), announcementIgnored, ""},
				{30 * time.Second, alive(wanUDN, descURL, "7"), announcementIgnored, ""},
				{15 * time.Minute, alive(routerUDN, descURL, "7"), announcementIgnored, ""},
			},
		},
		{
			name:  "a new BOOTID is a restart, once",
			known: "7",
			steps: []step{
				{0, alive(routerUDN, descURL, "8"), routerRestarted, "BOOTID.UPNP.ORG changed from 7 to 8"},
				{time.Millisecond, alive(wanUDN, descURL, "8"), announcementIgnored, ""},
				{250 * time.Millisecond, alive(routerUDN, descURL, "8"), announcementIgnored, ""},
			},
		},
		{
			name:  "byebye then alive with a new BOOTID",
			known: "7",
			steps: []step{
				{0, byebye(routerUDN, "7"), routerLeaving, ""},
				{time.Millisecond, byebye(wanUDN, "7"), announcementIgnored, ""},
				{5 * time.Second, alive(routerUDN, descURL, "9"), routerRestarted, "back after ssdp:byebye"},
				{5*time.Second + time.Millisecond, alive(wanUDN, descURL, "9"), announcementIgnored, ""},
			},
		},
		{
			name:  "byebye then the dying router's last alive burst (miniupnpd byebyeGrace)",
			known: "7",
			steps: []step{
				{0, byebye(routerUDN, "7"), routerLeaving, ""},
				{time.Millisecond, alive(routerUDN, descURL, "7"), announcementIgnored, ""},
				{byebyeGrace - time.Millisecond, alive(wanUDN, descURL, "7"), announcementIgnored, ""},
				{3 * time.Second, alive(routerUDN, descURL, "8"), routerRestarted, "back after ssdp:byebye"},
			},
		},
		{
			name:  "byebye then alive with the same BOOTID after the grace: check, rate-limited",
			known: "7",
			steps: []step{
				{0, byebye(routerUDN, "7"), routerLeaving, ""},
				{2 * time.Second, alive(routerUDN, descURL, "7"), checkSubscriptions, ""},
				{3 * time.Second, alive(routerUDN, descURL, "7"), announcementIgnored, ""},
				{2*time.Second + checkInterval, alive(routerUDN, descURL, "7"), checkSubscriptions, ""},
				{20 * time.Second, alive(routerUDN, descURL, "8"), routerRestarted, "back after ssdp:byebye"},
			},
		},
		{
			name: "byebye and alive without BOOTID",
			steps: []step{
				{0, byebye(routerUDN, ""), routerLeaving, ""},
				{time.Millisecond, alive(routerUDN, descURL, ""), announcementIgnored, ""},
				{5 * time.Second, alive(routerUDN, descURL, ""), routerRestarted, "back after ssdp:byebye"},
			},
		},
		{
			name: "no usable BOOTID: a check at most every checkInterval",
			steps: []step{
				{0, alive(routerUDN, descURL, ""), checkSubscriptions, ""},
				{time.Second, alive(routerUDN, descURL, ""), announcementIgnored, ""},
				{checkInterval - time.Millisecond, alive(routerUDN, descURL, ""), announcementIgnored, ""},
				{checkInterval, alive(routerUDN, descURL, ""), checkSubscriptions, ""},
				{checkInterval + time.Second, alive(routerUDN, descURL, "3"), announcementIgnored, ""},
				{3 * checkInterval, alive(routerUDN, descURL, "3"), announcementIgnored, ""},
			},
		},
		{
			name:  "a known BOOTID and an alive without one: check",
			known: "7",
			steps: []step{
				{0, alive(routerUDN, descURL, ""), checkSubscriptions, ""},
				{time.Second, alive(routerUDN, descURL, "7"), announcementIgnored, ""},
			},
		},
		{
			name:  "the description moved on the same host",
			known: "7",
			steps: []step{
				{0, alive(routerUDN, movedURL, "7"), routerRestarted, "moved its description to " + movedURL},
			},
			wantURL: movedURL,
		},
		{
			name:  "a LOCATION on another host is not believed",
			known: "7",
			steps: []step{
				{0, alive(routerUDN, "http://192.168.1.66:5000/rootDesc.xml", "7"), announcementIgnored, ""},
				{time.Second, alive(routerUDN, "ftp://192.168.1.1/rootDesc.xml", "7"), announcementIgnored, ""},
			},
		},
		{
			name:  "a new UUID at the description's URL is the router",
			known: "7",
			steps: []step{
				{0, alive(otherUDN, descURL, "8"), routerRestarted, "BOOTID.UPNP.ORG changed from 7 to 8"},
			},
		},
		{
			name:  "another device on the router's address",
			known: "7",
			steps: []step{
				{0, alive(otherUDN, "http://192.168.1.1:49000/media.xml", "99"), announcementIgnored, ""},
				{time.Second, byebye(otherUDN, "99"), announcementIgnored, ""},
				{2 * time.Second, update(otherUDN, "99", "100"), announcementIgnored, ""},
				// None of that changed what doorman knows of the router.
				{3 * time.Second, alive(routerUDN, descURL, "7"), announcementIgnored, ""},
			},
		},
		{
			name:  "ssdp:update announces the next BOOTID",
			known: "7",
			steps: []step{
				{0, update(routerUDN, "7", "8"), announcementIgnored, ""},
				{time.Second, alive(routerUDN, descURL, "8"), announcementIgnored, ""},
				{2 * time.Second, alive(routerUDN, descURL, "9"), routerRestarted, "changed from 8 to 9"},
			},
		},
		{
			name:  "an alive after the subscriptions were lost",
			known: "7",
			lost:  true,
			steps: []step{
				{0, alive(routerUDN, descURL, "7"), routerRestarted, "after its event subscriptions were lost"},
				{time.Second, alive(routerUDN, descURL, "7"), announcementIgnored, ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d restartDetector
			d.setGateway(&Gateway{URL: descURL, Twins: []string{twinURL}, udns: []string{routerUDN, wanUDN}})
			start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			if tt.known != "" {
				d.bootID = tt.known
			}
			if tt.lost {
				d.subscriptionsLost()
			}
			var lastWhy string
			for i, s := range tt.steps {
				var got restartAction
				if s.msg == deferredRestartDue {
					got = d.deferredDue(start.Add(s.at))
				} else {
					got = d.observe(s.msg, start.Add(s.at))
				}
				if got.kind != s.want || !strings.Contains(got.why, s.wantWhy) || (s.wantWhy == "") != (got.why == "") {
					t.Errorf("step %d (%s %s BOOTID %q at %v) = %+v, want kind %d why %q", i, s.msg.NTS, s.msg.uuid(), s.msg.BootID, s.at, got, s.want, s.wantWhy)
				}
				if got.why != "" {
					lastWhy = got.why
				}
			}
			why, url := d.restartLocation()
			if why != lastWhy {
				t.Errorf("restartLocation why = %q, want %q", why, lastWhy)
			}
			if want := cmp.Or(tt.wantURL, descURL); url != want {
				t.Errorf("restartLocation URL = %q, want %q", url, want)
			}
			if _, again := d.restartLocation(); again != descURL {
				t.Errorf("restartLocation again = %q, want the description's %q", again, descURL)
			}
		})
	}
}

// deferredRestartDue stands for the timer of a restartDeferred firing in
// TestRestartDetector's steps.
var deferredRestartDue = ssdpMessage{NTS: "(deferred restart due)"}

// TestRestartDetectorStorm: forged byebyes and alives with new BOOTIDs,
// alternating as fast as a LAN device can send them, make one restart now
// and one when the interval has passed, however long the storm lasts.
func TestRestartDetectorStorm(t *testing.T) {
	const udn = "uuid:aaaaaaaa-0000-0000-0000-000000000001"
	const loc = "http://192.168.1.1:5000/rootDesc.xml"
	var d restartDetector
	d.setGateway(&Gateway{URL: loc, udns: []string{udn}})
	d.bootID = "1"
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	restarts, deferred, due := 0, 0, time.Time{}
	const storm = 5 * time.Minute
	for i := 0; time.Duration(i)*5*time.Millisecond < storm; i++ {
		now := start.Add(time.Duration(i) * 5 * time.Millisecond)
		if !due.IsZero() && !now.Before(due) {
			if d.deferredDue(now).kind == routerRestarted {
				restarts++
			}
			due = time.Time{}
		}
		msg := ssdpMessage{NTS: "ssdp:byebye", USN: udn + "::upnp:rootdevice", BootID: fmt.Sprint(i)}
		if i%2 == 1 {
			msg = ssdpMessage{NTS: "ssdp:alive", USN: udn + "::upnp:rootdevice", Location: loc, BootID: fmt.Sprint(i + 1000)}
		}
		switch act := d.observe(msg, now); act.kind {
		case routerRestarted:
			restarts++
		case restartDeferred:
			deferred++
			due = act.at
		}
	}
	if want := int(storm/relistInterval) + 1; restarts > want {
		t.Errorf("%d restarts in a %s storm, want at most %d (one per %s)", restarts, storm, want, relistInterval)
	}
	if restarts < 2 {
		t.Errorf("%d restarts: a storm must not hide a real restart for good", restarts)
	}
	t.Logf("%d restarts, %d deferrals in %s", restarts, deferred, storm)
}
