package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/lab"
)

// TestLabRunRouterMoves: the router reboots and serves its description on
// another port (http://192.168.77.1:5000/rootDesc.xml becomes :5001). It is
// the same router: doorman follows it, asks nothing again, and a question
// asked before the move still closes its share.
func TestLabRunRouterMoves(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{LeaseFile: true})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	p := startDoorman(t, l, runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db")))
	synced(t, tg)
	dev1 := l.DeviceIP(1)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "garden cam", "-a", dev1, "80", "8080", "TCP")
	cam := waitText(t, tg, 10*time.Second, "New port share", "<b>8080</b>")

	l.Router(t, "move-router", "5001")
	moved := strings.Replace(l.IGDURL, ":5000/", ":5001/", 1)
	p.waitLine(t, p.logs, 15*time.Second, "router's description moved", ":5001")
	l.Run(t, "dev1", "upnpc", "-u", moved, "-e", "console", "-a", dev1, "3074", "3074", "UDP")
	waitText(t, tg, 15*time.Second, "New port share", "<b>3074</b>")
	if n := countText(tg, "8080"); n != 1 {
		t.Errorf("asked %d times about TCP 8080 across the move, want once", n)
	}

	// The question asked before the move closes the share on the router,
	// where it is now.
	press(t, tg, labOwner, cam, cam.Buttons[0][1].CallbackData)
	waitEdit(t, tg, cam, "Blocked</b> by")
	deadline := time.Now().Add(5 * time.Second)
	for {
		gone := true
		for _, e := range lab.ParseUpnpcList(l.Run(t, "dev1", "upnpc", "-u", moved, "-l")) {
			if e.ExternalPort == 8080 {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("TCP 8080 is still on the router after Block")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
