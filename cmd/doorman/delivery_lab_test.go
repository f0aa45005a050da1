package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/lab"
)

// waitLog waits until doorman's log holds part n times.
func waitLog(t *testing.T, p *runningDoorman, part string, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for strings.Count(p.logs.String(), part) < n {
		if time.Now().After(deadline) {
			t.Fatalf("doorman's log never said %q %d times", part, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// messagesWith counts the messages in chat that mention part.
func messagesWith(tg *telegramtest.Server, chat int64, part string) int {
	n := 0
	for _, m := range tg.Messages() {
		if m.ChatID == chat && strings.Contains(m.Text, part) {
			n++
		}
	}
	return n
}

// A mistyped DOORMAN_TELEGRAM_CHAT_ID: Telegram refuses the chat, the log
// says so once, and nothing is lost. After the setting is fixed and doorman
// restarted, the right chat is told about every share, once.
func TestLabWrongChatThenFixed(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	const wrong = int64(4224242)
	tg.SetChatUnreachable(wrong, true)
	db := filepath.Join(t.TempDir(), "doorman.db")
	dev1 := l.DeviceIP(1)

	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "garden cam", "-a", dev1, "80", "8080", "TCP")
	p := startDoorman(t, l, runEnv(l, tg, db, fmt.Sprintf("DOORMAN_TELEGRAM_CHAT_ID=%d", wrong)))
	waitLog(t, p, "Telegram refuses the owner chat", 1, 20*time.Second)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "nas", "-a", dev1, "443", "9443", "TCP")
	waitLog(t, p, "port shares changed", 2, 15*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := strings.Count(p.logs.String(), "Telegram refuses the owner chat"); n != 1 {
		t.Errorf("the refused chat is logged %d times, want once", n)
	}
	if n := len(tg.Messages()); n != 0 {
		t.Errorf("%d messages delivered to a chat Telegram does not know", n)
	}
	p.stop()

	start := time.Now()
	startDoorman(t, l, runEnv(l, tg, db))
	waitText(t, tg, 20*time.Second, "8080")
	waitText(t, tg, 20*time.Second, "9443")
	t.Logf("both shares in the right chat %s after the restart", time.Since(start))
	time.Sleep(time.Second)
	for _, port := range []string{"8080", "9443"} {
		if n := messagesWith(tg, labChat, port); n != 1 {
			t.Errorf("TCP %s is in %d messages of the right chat, want 1", port, n)
		}
	}
}

// A group that became a supergroup: Telegram answers with
// migrate_to_chat_id; doorman writes to the supergroup, and keeps doing so
// after a restart with the group's ID still set.
func TestLabGroupBecameSupergroup(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	const group, supergroup = int64(-4242), int64(-1004242)
	tg.SetChatMigrated(group, supergroup)
	db := filepath.Join(t.TempDir(), "doorman.db")
	env := runEnv(l, tg, db, fmt.Sprintf("DOORMAN_TELEGRAM_CHAT_ID=%d", group))
	dev1 := l.DeviceIP(1)

	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "garden cam", "-a", dev1, "80", "8080", "TCP")
	p := startDoorman(t, l, env)
	wait := func(part string) telegramtest.Message {
		t.Helper()
		m, err := tg.WaitMessage(waitCtx(t, 20*time.Second), func(m telegramtest.Message) bool { return strings.Contains(m.Text, part) })
		if err != nil {
			t.Fatalf("no message with %q: %v", part, err)
		}
		return m
	}
	if m := wait("8080"); m.ChatID != supergroup {
		t.Errorf("the report went to %d, want the supergroup", m.ChatID)
	}
	waitLog(t, p, "the group became a supergroup", 1, 5*time.Second)
	p.stop()

	startDoorman(t, l, env)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "nas", "-a", dev1, "443", "9443", "TCP")
	if m := wait("9443"); m.ChatID != supergroup {
		t.Errorf("the alert after the restart went to %d, want the supergroup", m.ChatID)
	}
	if n := messagesWith(tg, supergroup, "8080"); n != 1 {
		t.Errorf("TCP 8080 is in %d messages, want 1", n)
	}
}
