package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/lab"
)

// doorman check on the lab's doorman host, against the real miniupnpd (IGDv1,
// secure mode) and the fake Telegram: every check passes; with a token
// Telegram does not know, the Telegram check fails and so does the command.
func TestLabCheck(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{Secure: true, IGDv1: true})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	dev1 := l.DeviceIP(1)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "Plex Media Server", "-a", dev1, "32400", "32400", "TCP")
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "game", "-a", dev1, "7777", "7777", "UDP")
	env := runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db"), "DOORMAN_LOG_LEVEL=info")

	stdout, stderr, code := runDoorman(t, l, env, "check")
	t.Logf("doorman check:\n%s", stdout)
	if code != 0 {
		t.Errorf("doorman check exited %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range [][]string{
		{"✓ settings:"},
		{"✓ router:", l.IGDURL, "IGDv1", "WANIPConnection:1"},
		{"✓ shares:", "2 port share(s)"},
		{"✓ events:", "first event reached doorman at " + l.DoormanIP + ":"},
		{"– blocking:", "cannot tell without changing a share"},
		{"✓ Telegram:", "@" + tg.BotUsername()},
		{"✓ chat:", fmt.Sprint(labChat), "reachable"},
		{"All checks passed."},
	} {
		if !hasLine(stdout, want...) {
			t.Errorf("no line with %q", want)
		}
	}
	if strings.Contains(stdout, "✗") {
		t.Errorf("a ✗ with everything set up")
	}
	if n := len(tg.Messages()); n != 0 {
		t.Errorf("doorman check sent %d message(s)", n)
	}
	// The probe's subscription is gone: upnpc still lists the two shares,
	// and nothing was deleted.
	if n := len(lab.ParseUpnpcList(l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-l"))); n != 2 {
		t.Errorf("the router lists %d shares after the check, want 2", n)
	}

	bad := append(append([]string(nil), env...), "DOORMAN_TELEGRAM_TOKEN=7000000002:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsbx")
	stdout, stderr, code = runDoorman(t, l, bad, "check")
	t.Logf("doorman check with a wrong token:\n%s", stdout)
	if code != 1 {
		t.Errorf("doorman check with a wrong token exited %d, want 1\n%s", code, stderr)
	}
	if !hasLine(stdout, "✗ Telegram:", "401", "Fix:") || !hasLine(stdout, "1 problem(s) found.") {
		t.Errorf("no ✗ for the wrong token")
	}
	for _, secret := range []string{"BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsbx", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Error("the bot token appears in doorman check's output")
		}
	}
}

// hasLine reports whether one line of out holds every part.
func hasLine(out string, parts ...string) bool {
next:
	for _, l := range strings.Split(out, "\n") {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		return true
	}
	return false
}
