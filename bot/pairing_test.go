package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
)

func TestPairingCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		c, err := newPairingCode()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(normalizeCode(c)); n < 8 {
			t.Fatalf("code %q has %d characters", c, n)
		}
		if seen[c] {
			t.Fatalf("code %q came twice", c)
		}
		seen[c] = true
	}
	if normalizeCode("abcde-fg hjk") != "ABCDEFGHJK" {
		t.Error("codes are not compared leniently")
	}
}

func TestPairingLocksAfterWrongCodes(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var shown []string
	p := &pairing{show: func(c PairingCode) { shown = append(shown, c.Code) }}
	if err := p.fresh(now); err != nil {
		t.Fatal(err)
	}
	code := shown[0]
	for i := 1; i <= pairingTries; i++ {
		reply, ok := p.try("WRONG-CODE"+strings.Repeat("X", i), now)
		if ok || !strings.Contains(reply, "not the pairing code") {
			t.Fatalf("try %d: %q %v", i, reply, ok)
		}
		if i == pairingTries && !strings.Contains(reply, "locked") {
			t.Errorf("fifth wrong code did not lock: %q", reply)
		}
	}
	// Locked: even the right code is refused, without a hint.
	if reply, ok := p.try(code, now.Add(time.Minute)); ok || !strings.Contains(reply, "locked") {
		t.Errorf("right code while locked: %q %v", reply, ok)
	}
	// After the lock, but past the code's validity: a new code is shown.
	if reply, ok := p.try(code, now.Add(pairingLock+time.Second)); ok || !strings.Contains(reply, "expired") || len(shown) != 2 {
		t.Errorf("after lock and expiry: %q %v, %d codes shown", reply, ok, len(shown))
	}
	if _, ok := p.try(strings.ToLower(shown[1]), now.Add(pairingLock+2*time.Second)); !ok {
		t.Error("the new code was refused")
	}
	if _, ok := p.try(shown[1], now.Add(pairingLock+3*time.Second)); ok {
		t.Error("a code worked twice")
	}
}

func TestPairingInTheChat(t *testing.T) {
	h := newHarnessChat(t, 0, nil)
	code := h.pairingCode()
	h.tg.SendText(3003, 77, "/start nonsense")
	if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool {
		return m.ChatID == 3003 && strings.Contains(m.Text, "not the pairing code")
	}); err != nil {
		t.Fatal(err)
	}
	h.tg.SendText(3003, 77, "/list")
	h.tg.SendText(4004, 78, "/start "+code)
	if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return m.ChatID == 4004 && strings.Contains(m.Text, "paired") }); err != nil {
		t.Fatal(err)
	}
	if owner, _ := LoadOwnerChat(h.db); owner != 4004 || h.engine.Chat() != 4004 {
		t.Errorf("owner chat %d, engine chat %d", owner, h.engine.Chat())
	}
	for _, m := range h.tg.Messages() {
		if m.ChatID == 3003 && strings.Contains(m.Text, "shares") {
			t.Errorf("an unpaired chat got an answer to /list: %q", m.Text)
		}
	}
	h.tg.SendText(4004, 78, "/unpair")
	if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return m.ChatID == 4004 && strings.Contains(m.Text, "Unpaired") }); err != nil {
		t.Fatal(err)
	}
	if owner, _ := LoadOwnerChat(h.db); owner != 0 || h.engine.Chat() != 0 {
		t.Errorf("after /unpair: owner chat %d, engine chat %d", owner, h.engine.Chat())
	}
}

// The engine keeps the one owner chat: pairing sets it for alerts and
// presses alike, and a restart reads it back from the pairing.
func TestPairedChatHasOneOwner(t *testing.T) {
	h := newHarnessChat(t, 0, nil)
	code := h.pairingCode()
	h.tg.SendText(4004, 78, "/start "+code)
	if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return m.ChatID == 4004 && strings.Contains(m.Text, "paired") }); err != nil {
		t.Fatal(err)
	}
	h.list()
	h.list(mapping(8080, "192.168.77.21", "web"))
	msg, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return strings.Contains(m.Text, "New port share") })
	if err != nil || msg.ChatID != 4004 {
		t.Fatalf("alert %+v, %v; want it in the paired chat", msg, err)
	}
	if ans := h.press(78, msg, msg.Buttons[0][0].CallbackData); !strings.Contains(ans.Text, "Allowing") {
		t.Errorf("press in the paired chat answered %q", ans.Text)
	}
	h.stop()
	h.start(nil)
	if got := h.engine.Chat(); got != 4004 {
		t.Errorf("after a restart the engine's chat is %d, want the paired 4004", got)
	}
}
