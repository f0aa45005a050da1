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
	const chat, user = 3003, 77
	for i := 1; i <= pairTries; i++ {
		reply, ok := p.try(Words{}, "WRONG-CODE"+strings.Repeat("X", i), chat, user, now)
		if ok || !strings.Contains(reply, "not the pairing code") {
			t.Fatalf("try %d: %q %v", i, reply, ok)
		}
		if i == pairTries && !strings.Contains(reply, "locked") {
			t.Errorf("fifth wrong code did not lock: %q", reply)
		}
	}
	// Locked: even the right code is refused, without a hint; a chat that
	// keeps trying is answered once a minute, and ignored in between.
	if reply, ok := p.try(Words{}, code, chat, user, now.Add(time.Minute)); ok || !strings.Contains(reply, "locked") {
		t.Errorf("right code while locked: %q %v", reply, ok)
	}
	if reply, ok := p.try(Words{}, code, chat, user, now.Add(time.Minute+time.Second)); ok || reply != "" {
		t.Errorf("right code again at once while locked: %q %v, want it ignored", reply, ok)
	}
	if reply, ok := p.try(Words{}, code, chat+1, user, now.Add(time.Minute+2*time.Second)); ok || reply != "" {
		t.Errorf("the locked user from another chat at once: %q %v, want it ignored", reply, ok)
	}
	if reply, ok := p.try(Words{}, code, chat, user, now.Add(2*time.Minute)); ok || !strings.Contains(reply, "locked") {
		t.Errorf("right code a minute later while locked: %q %v", reply, ok)
	}
	// After the lock, but past the code's validity: a new code is shown.
	if reply, ok := p.try(Words{}, code, chat, user, now.Add(pairLockFor+time.Second)); ok || !strings.Contains(reply, "expired") || len(shown) != 2 {
		t.Errorf("after lock and expiry: %q %v, %d codes shown", reply, ok, len(shown))
	}
	if _, ok := p.try(Words{}, strings.ToLower(shown[1]), chat, user, now.Add(pairLockFor+2*time.Second)); !ok {
		t.Error("the new code was refused")
	}
	if _, ok := p.try(Words{}, shown[1], chat, user, now.Add(pairLockFor+3*time.Second)); ok {
		t.Error("a code worked twice")
	}
}

// TestPairLock: wrong codes lock the chat and the user that sent them, not
// the owner's chat; only many chats and users together pause everyone.
func TestPairLock(t *testing.T) {
	type step struct {
		at         time.Duration
		chat, user int64
		wrong      bool      // send a wrong code (else only ask whether it may try)
		want       lockScope // the answer of locked before the step, or of wrong
	}
	const owner, ownerUser = 4004, 78
	strangerFloods := func(chats int, at time.Duration) []step {
		var s []step
		for c := range chats {
			for i := range pairTries {
				want := lockNone
				if i == pairTries-1 {
					want = lockChat
				}
				s = append(s, step{at: at, chat: int64(9000 + c), user: int64(900 + c), wrong: true, want: want})
			}
		}
		return s
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"five wrong codes lock the chat", append(strangerFloods(1, 0),
			step{at: time.Minute, chat: 9000, user: 900, want: lockChat},
			step{at: time.Minute, chat: owner, user: ownerUser, want: lockNone},
		)},
		{"the lock ends", append(strangerFloods(1, 0),
			step{at: pairLockFor - time.Second, chat: 9000, user: 900, want: lockChat},
			step{at: pairLockFor, chat: 9000, user: 900, want: lockNone},
		)},
		{"one stranger in many groups is locked everywhere", []step{
			{chat: -1001, user: 900, wrong: true}, {chat: -1002, user: 900, wrong: true}, {chat: -1003, user: 900, wrong: true},
			{chat: -1004, user: 900, wrong: true}, {chat: -1005, user: 900, wrong: true, want: lockChat},
			{at: time.Second, chat: -1006, user: 900, want: lockChat},
			{at: time.Second, chat: owner, user: ownerUser, want: lockNone},
		}},
		{"the owner's own typos lock only the owner", []step{
			{chat: owner, user: ownerUser, wrong: true}, {chat: owner, user: ownerUser, wrong: true},
			{chat: owner, user: ownerUser, wrong: true}, {chat: owner, user: ownerUser, wrong: true},
			{chat: owner, user: ownerUser, wrong: true, want: lockChat},
			{at: time.Second, chat: 9000, user: 900, want: lockNone},
		}},
		{"wrong codes far apart never lock", func() []step {
			var s []step
			for i := range 3 * pairTries {
				s = append(s, step{at: time.Duration(i) * pairLockFor, chat: 9000, user: 900, wrong: true})
			}
			return s
		}()},
		{"a few strangers do not pause pairing", append(strangerFloods(pairAllTries/pairTries-1, 0),
			step{at: time.Minute, chat: owner, user: ownerUser, want: lockNone},
		)},
		{"a dozen strangers pause everyone, for a while", append(strangerFloods(pairAllTries/pairTries, 0),
			step{at: time.Minute, chat: owner, user: ownerUser, want: lockAll},
			step{at: pairLockFor, chat: owner, user: ownerUser, want: lockNone},
		)},
	}
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l pairLock
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				if !s.wrong {
					if got, _ := l.locked(now, s.chat, s.user); got != s.want {
						t.Errorf("step %d: locked = %v, want %v", i, got, s.want)
					}
					continue
				}
				if got, _ := l.locked(now, s.chat, s.user); got != lockNone {
					t.Fatalf("step %d: a wrong code was not allowed to be tried (%v)", i, got)
				}
				if got, _ := l.wrong(now, s.chat, s.user); got != s.want {
					t.Errorf("step %d: wrong = %v, want %v", i, got, s.want)
				}
			}
			if n := len(l.chats) + len(l.users); n > 2*pairAllTries {
				t.Errorf("%d chats and users remembered", n)
			}
		})
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

// TestPairingStrangerCannotLockOutOwner: a stranger who found the bot and
// sends wrong codes locks only their own chat; the owner pairs from theirs.
func TestPairingStrangerCannotLockOutOwner(t *testing.T) {
	h := newHarnessChat(t, 0, nil)
	code := h.pairingCode()
	for i := range pairTries + 1 {
		h.tg.SendText(3003, 77, "/start WRONG-"+strings.Repeat("X", i+1))
	}
	locked := func(m telegramtest.Message) bool { return m.ChatID == 3003 && strings.Contains(m.Text, "locked here") }
	if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool {
		n := 0
		for _, m := range h.tg.Messages() {
			if locked(m) {
				n++
			}
		}
		return n >= 2
	}); err != nil {
		t.Fatalf("the stranger's chat was not locked: %v", err)
	}
	// The stranger, even with the right code now, stays out.
	h.tg.SendText(3003, 77, "/start "+code)
	h.tg.SendText(4004, 78, "/start "+code)
	if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return m.ChatID == 4004 && strings.Contains(m.Text, "paired") }); err != nil {
		t.Fatal(err)
	}
	if owner, _ := LoadOwnerChat(h.db); owner != 4004 {
		t.Errorf("owner chat %d, want 4004", owner)
	}
	// The stranger's chat was told of the lock, and then ignored: it got
	// no answer to the right code.
	var toStranger []string
	for _, m := range h.tg.Messages() {
		if m.ChatID == 3003 {
			toStranger = append(toStranger, m.Text)
		}
	}
	if len(toStranger) != pairTries+1 {
		t.Errorf("the stranger got %d answers to %d attempts, want %d: %q", len(toStranger), pairTries+2, pairTries+1, toStranger)
	}
}
