package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/lab"
)

// addShare opens a share with upnpc on a lab device. A share doorman closes
// before upnpc reads it back (a block rule at work) makes upnpc fail with
// 714 after the add succeeded; that counts as opened.
func addShare(t testing.TB, l *lab.Lab, host string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.Command(ctx, host, "upnpc", append([]string{"-u", l.IGDURL}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil && !strings.Contains(out.String(), "GetSpecificPortMappingEntry() failed with code 714") {
		t.Fatalf("upnpc %q on %s: %v\n%s", args, host, err, out.String())
	}
}

// sharesOf returns how many shares the router lists for a client.
func sharesOf(t testing.TB, l *lab.Lab, client string) int {
	t.Helper()
	n := 0
	for _, e := range lab.ParseUpnpcList(l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-l")) {
		if e.InternalClient == client {
			n++
		}
	}
	return n
}

// questionsAbout returns the messages that ask about shares of a device
// (its address in bold, as questions write it).
func questionsAbout(tg *telegramtest.Server, ip string) []telegramtest.Message {
	var out []telegramtest.Message
	for _, m := range tg.Messages() {
		if m.ChatID == labChat && strings.Contains(m.Text, "<b>"+ip+"</b>") && (strings.Contains(m.Text, "New port share") || strings.Contains(m.Text, "Port share changed") || strings.Contains(m.Text, "Unusually active device")) {
			out = append(out, m)
		}
	}
	return out
}

// waitCurrent waits until the message, as the user sees it after edits,
// holds every part.
func waitCurrent(t testing.TB, tg *telegramtest.Server, msg telegramtest.Message, d time.Duration, parts ...string) telegramtest.Message {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		cur, _ := tg.Current(msg.ChatID, msg.MessageID)
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(cur.Text, p)
		}
		if ok {
			return cur
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %d does not say %q after %s:\n%s", msg.MessageID, parts, d, cur.Text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLabRunRealAppsOneQuestionEach runs Transmission, Syncthing and
// qBittorrent on three devices while doorman runs: each app is one
// question, naming the app where its description or port tells and the
// protocol of each share, and Allow keeps the app quiet when it reopens.
func TestLabRunRealAppsOneQuestionEach(t *testing.T) {
	apps := []struct {
		host  string
		app   lab.App
		parts []string // what its question says once all its shares are in
	}{
		{"dev1", lab.QBittorrent, []string{"TCP <b>40123</b> open to the internet · PCP", "UDP <b>40123</b> open to the internet · PCP"}},
		{"dev2", lab.Transmission, []string{"<b>Transmission (BitTorrent)</b> on", "TCP <b>51413</b> open to the internet · UPnP", "UDP <b>51413</b> open to the internet · UPnP"}},
		{"dev3", lab.Syncthing, []string{"<b>Syncthing</b> on", "to port 22000 of the device · UPnP", "to port 22000 of the device · NAT-PMP"}},
	}
	t.Parallel()
	for _, a := range apps {
		lab.RequireApp(t, a.app)
	}
	l := lab.Start(t, lab.Options{Devices: len(apps)})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	startDoorman(t, l, runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db")))
	synced(t, tg)

	running := make([]*lab.RunningApp, len(apps))
	for i, a := range apps {
		running[i] = l.StartApp(t, a.host, a.app)
	}
	questions := make([]telegramtest.Message, len(apps))
	for i, r := range running {
		r.WaitShares(t)
		q := waitText(t, tg, 20*time.Second, "<b>"+r.IP+"</b>")
		questions[i] = waitCurrent(t, tg, q, 10*time.Second, apps[i].parts...)
	}
	for i, r := range running {
		if qs := questionsAbout(tg, r.IP); len(qs) != 1 {
			t.Errorf("%s: %d questions, want 1: %+v", apps[i].app, len(qs), qs)
		}
		if strings.Contains(questions[i].Text, "PCP client") {
			t.Errorf("%s: the question names a guess from the protocol as the app:\n%s", apps[i].app, questions[i].Text)
		}
		press(t, tg, labOwner, questions[i], questions[i].Buttons[0][0].CallbackData)
		waitEdit(t, tg, questions[i], "Allowed</b> by")
	}

	// Allowed: the apps close their shares when they stop and open them
	// again when they start; a renewal on another outside port and by
	// another protocol stays quiet too.
	sent := len(tg.Messages())
	for i, r := range running[:2] {
		r.Stop(t)
		running[i] = l.StartApp(t, apps[i].host, apps[i].app)
		running[i].WaitShares(t)
	}
	l.Run(t, "dev2", "natpmpc", "-g", l.RouterIP, "-a", "51500", "51413", "tcp", "600")
	addShare(t, l, "dev3", "-e", "syncthing-22001", "-a", running[2].IP, "22000", "22001", "TCP")
	time.Sleep(2 * time.Second)
	synced(t, tg)
	for _, m := range tg.Messages()[sent:] {
		if !strings.Contains(m.Text, "Status") && m.ChatID == labChat {
			t.Errorf("an allowed app was asked about again: %q", m.Text)
		}
	}
}

// burstFigures is what the burst of 60 measured.
type burstFigures struct {
	messages   int           // messages doorman sent about the device
	toMessage  time.Duration // first share to the busy-device message
	toAllGone  time.Duration // Block everything to the last share gone
	shares     int
	busyMsgs   int
	otherAsked bool
}

// runBurst has dev1 open 60 shares as fast as upnpc can, presses Block
// everything on the one busy-device message, and checks what happens to
// dev1's next share and to another device's.
func runBurst(t testing.TB, l *lab.Lab, tg *telegramtest.Server) burstFigures {
	const n = 60
	dev1, dev2 := l.DeviceIP(1), l.DeviceIP(2)
	script := fmt.Sprintf(`for p in $(seq 30000 %d); do upnpc -u %s -e "burst $p" -a %s $p $p TCP >/dev/null || exit 1; done`, 30000+n-1, l.IGDURL, dev1)
	start := time.Now()
	l.Run(t, "dev1", "sh", "-c", script)
	t.Logf("dev1 opened %d shares in %s", n, time.Since(start))
	busy := waitText(t, tg, 20*time.Second, "Unusually active device", "<b>"+dev1+"</b>")
	f := burstFigures{toMessage: busy.Time.Sub(start), shares: n}
	for _, want := range []string{"FRITZ!Box", "Permit independent port sharing", "Selbstständige Portfreigaben für dieses Gerät erlauben", "OpenWrt", "miniupnpd", "malware", "/list shows them all"} {
		if !strings.Contains(busy.Text, want) {
			t.Errorf("the busy-device message lacks %q:\n%s", want, busy.Text)
		}
	}
	if len(busy.Buttons) != 2 || !strings.Contains(busy.Buttons[0][0].Text, "Block everything from this device") || !strings.Contains(busy.Buttons[1][0].Text, "Allow everything from this device") {
		t.Fatalf("busy-device buttons = %+v", busy.Buttons)
	}
	// Let the rest of the burst reach doorman: it joins the message.
	time.Sleep(time.Second)
	pressed := time.Now()
	press(t, tg, labOwner, busy, busy.Buttons[0][0].CallbackData)
	for sharesOf(t, l, dev1) > 0 {
		if time.Since(pressed) > 10*time.Second {
			t.Fatalf("%d shares of dev1 are still open 10 s after Block everything", sharesOf(t, l, dev1))
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.toAllGone = time.Since(pressed)
	waitEdit(t, tg, busy, "Blocked</b> by")

	// The device's next share is closed without a question; another
	// device is still asked.
	addShare(t, l, "dev1", "-e", "after the block", "-a", dev1, "31000", "31000", "UDP")
	waitGone(t, l, "31000", "UDP", 5*time.Second)
	l.Run(t, "dev2", "upnpc", "-u", l.IGDURL, "-e", "other device", "-a", dev2, "31001", "31001", "TCP")
	waitText(t, tg, 10*time.Second, "New port share", "<b>"+dev2+"</b>", "31001")
	f.otherAsked = true
	for _, m := range questionsAbout(tg, dev1) {
		f.messages++
		if strings.Contains(m.Text, "Unusually active device") {
			f.busyMsgs++
		}
		if strings.Contains(m.Text, "31000") {
			t.Errorf("the blocked device's next share was asked about: %q", m.Text)
		}
	}
	if f.busyMsgs != 1 {
		t.Errorf("%d busy-device messages, want 1", f.busyMsgs)
	}
	return f
}

func TestLabRunBusyDevice(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	db := filepath.Join(t.TempDir(), "doorman.db")
	env := runEnv(l, tg, db)
	p := startDoorman(t, l, env)
	synced(t, tg)
	f := runBurst(t, l, tg)
	t.Logf("burst of %d: %d messages about the device, the busy one %s after the first share; Block everything to all gone %s", f.shares, f.messages, f.toMessage, f.toAllGone)
	// The first five shares are questions held back for a second
	// (DefaultGather); the sixth, tens of milliseconds later, makes the
	// device busy and folds them into the busy message before they go out.
	if f.messages != 1 {
		for _, m := range questionsAbout(tg, l.DeviceIP(1)) {
			t.Logf("message %d: %q", m.MessageID, m.Text)
		}
		t.Errorf("%d messages about the busy device, want 1", f.messages)
	}

	// The block holds across a restart of doorman.
	p.stop()
	startDoorman(t, l, env)
	synced(t, tg)
	addShare(t, l, "dev1", "-e", "after restart", "-a", l.DeviceIP(1), "31002", "31002", "TCP")
	waitGone(t, l, "31002", "TCP", 10*time.Second)
	tg.SendText(labChat, labOwner, "/blocked")
	waitText(t, tg, 10*time.Second, "Blocked services", "everything it opens")
}

// TestLabRunBlockSticks blocks "telnetd camera" (TCP 2323 → 23): the device
// reopening it under another description, or on another outside port, is
// closed again without a question.
func TestLabRunBlockSticks(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	startDoorman(t, l, runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db")))
	synced(t, tg)
	dev1 := l.DeviceIP(1)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "telnetd camera", "-a", dev1, "23", "2323", "TCP")
	q := waitText(t, tg, 10*time.Second, "New port share", "<b>2323</b>")
	press(t, tg, labOwner, q, q.Buttons[0][1].CallbackData)
	waitGone(t, l, "2323", "TCP", 5*time.Second)
	waitEdit(t, tg, q, "Blocked</b> by")

	addShare(t, l, "dev1", "-e", "totally legit", "-a", dev1, "23", "2323", "TCP")
	waitGone(t, l, "2323", "TCP", 5*time.Second)
	waitText(t, tg, 10*time.Second, "Closed again", "2323")
	addShare(t, l, "dev1", "-e", "totally legit", "-a", dev1, "23", "2324", "TCP")
	waitGone(t, l, "2324", "TCP", 5*time.Second)
	addShare(t, l, "dev1", "-e", "udp too", "-a", dev1, "23", "2325", "UDP")
	waitGone(t, l, "2325", "UDP", 5*time.Second)
	if qs := questionsAbout(tg, dev1); len(qs) != 1 {
		t.Errorf("%d questions about the blocked camera, want 1: %+v", len(qs), qs)
	}
	// Another inside port of the device is another service: asked.
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "camera web", "-a", dev1, "80", "8080", "TCP")
	waitText(t, tg, 10*time.Second, "New port share", "<b>8080</b>")
}

// TestLabRunTenFlips closes and reopens one share ten times with another
// description each time while its question waits: one message, edited.
func TestLabRunTenFlips(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	startDoorman(t, l, runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db")))
	synced(t, tg)
	dev1 := l.DeviceIP(1)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "flip 0", "-a", dev1, "5555", "5555", "TCP")
	q := waitText(t, tg, 10*time.Second, "New port share", "<b>5555</b>")
	for i := 1; i <= 10; i++ {
		l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-d", "5555", "TCP")
		l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", fmt.Sprint("flip ", i), "-a", dev1, "5555", "5555", "TCP")
		time.Sleep(100 * time.Millisecond)
	}
	waitCurrent(t, tg, q, 10*time.Second, "“flip 10”")
	if qs := questionsAbout(tg, dev1); len(qs) != 1 {
		t.Errorf("%d messages about the flipping share, want 1", len(qs))
	}
	edits := 0
	for _, e := range tg.Edits() {
		if e.MessageID == q.MessageID {
			edits++
		}
	}
	t.Logf("10 flips: 1 message, %d edits", edits)
	if edits == 0 {
		t.Error("the flips did not edit the question")
	}
}

// TestLabRunQuestionOvertakesNotices: while Telegram is down, four blocked
// services of one device are reopened and closed again, queuing four
// notices; then another device opens a share. When Telegram is back, that
// question goes out first: a question about a new service never waits
// behind notices.
func TestLabRunQuestionOvertakesNotices(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	startDoorman(t, l, runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db")))
	synced(t, tg)
	dev1, dev2 := l.DeviceIP(1), l.DeviceIP(2)
	ports := []string{"2001", "2002", "2003", "2004"}
	for _, p := range ports {
		l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "noisy "+p, "-a", dev1, p, p, "TCP")
		q := waitText(t, tg, 15*time.Second, "New port share", "<b>"+p+"</b>")
		press(t, tg, labOwner, q, q.Buttons[0][1].CallbackData)
		waitGone(t, l, p, "TCP", 5*time.Second)
		waitEdit(t, tg, q, "Blocked</b> by")
	}

	tg.Fail("sendMessage", telegramtest.Failure{Times: -1, Status: 502})
	for _, p := range ports {
		addShare(t, l, "dev1", "-e", "noisy again "+p, "-a", dev1, p, p, "TCP")
		waitGone(t, l, p, "TCP", 5*time.Second)
	}
	l.Run(t, "dev2", "upnpc", "-u", l.IGDURL, "-e", "a new game", "-a", dev2, "40000", "40000", "UDP")
	// The question is held a second to gather the app's other shares;
	// then it waits in the outbox behind the notices, by age.
	deadline := time.Now().Add(10 * time.Second)
	for before := tg.Calls("sendMessage"); tg.Calls("sendMessage") < before+2 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	sent := len(tg.Messages())
	tg.ClearFailures()

	waitText(t, tg, 60*time.Second, "New port share", "<b>40000</b>")
	deadline = time.Now().Add(30 * time.Second)
	for len(tg.Messages()) < sent+5 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	after := tg.Messages()[sent:]
	if len(after) < 5 {
		t.Fatalf("after Telegram came back, %d messages, want the question and 4 notices: %+v", len(after), after)
	}
	if !strings.Contains(after[0].Text, "<b>40000</b>") {
		t.Errorf("the first message after Telegram came back is not the new question: %q", after[0].Text)
	}
	notices := 0
	for _, m := range after[1:] {
		if strings.Contains(m.Text, "Closed again") {
			notices++
			if !m.DisableNotification {
				t.Errorf("a notice rang: %q", m.Text)
			}
		}
	}
	if notices != len(ports) {
		t.Errorf("%d closed-again notices after the question, want %d", notices, len(ports))
	}
	if after[0].DisableNotification {
		t.Error("the question arrived without a sound")
	}
}
