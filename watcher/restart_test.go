package watcher

import (
	"cmp"
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
			d.setGateway(&Gateway{URL: descURL, udns: []string{routerUDN, wanUDN}})
			start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			if tt.known != "" {
				d.bootID = tt.known
			}
			if tt.lost {
				d.subscriptionsLost()
			}
			var lastWhy string
			for i, s := range tt.steps {
				got := d.observe(s.msg, start.Add(s.at))
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
