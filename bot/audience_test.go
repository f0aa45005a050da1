package bot

// Tests of how doorman speaks to a person: topics, languages, quiet hours,
// what rings, and the pairing link.

import (
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/approvals/approvalstest"
	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/storage/storagetest"
	"github.com/doorman-upnp/doorman/watcher"
)

// newHarnessWith starts a harness whose outbox and bot settings configure
// changes first.
func newHarnessWith(t *testing.T, chat int64, configure func(*OutboxConfig, *Config)) *harness {
	t.Helper()
	tg := telegramtest.NewServer(botToken)
	t.Cleanup(tg.Close)
	h := &harness{t: t, tg: tg, db: storagetest.Open(t), router: &approvalstest.Router{}, chat: chat, codes: make(chan string, 10), links: make(chan string, 10), configure: configure}
	h.start(nil)
	return h
}

func (h *harness) waitMessage(what string, match func(telegramtest.Message) bool) telegramtest.Message {
	h.t.Helper()
	m, err := h.tg.WaitMessage(h.ctx(), match)
	if err != nil {
		h.t.Fatalf("no %s: %v", what, err)
	}
	return m
}

// A group with topics pairs in one topic: every message goes there, also
// after a restart, and a German owner gets German.
func TestPairingInATopic(t *testing.T) {
	const group, topic = int64(-1001234567890), 7
	h := newHarnessWith(t, 0, nil)
	code := h.pairingCode()
	h.tg.SendUserMessage(telegramtest.UserMessage{ChatID: group, From: 78, Text: "/start " + code, ThreadID: topic, LanguageCode: "de-DE"})
	welcome := h.waitMessage("welcome", func(m telegramtest.Message) bool { return m.ChatID == group && strings.Contains(m.Text, "gekoppelt") })
	if welcome.ThreadID != topic || !strings.Contains(welcome.Text, "Portfreigaben") || !strings.Contains(welcome.Text, "<b>Erlauben</b>") {
		t.Errorf("welcome = %+v", welcome)
	}
	owner, err := loadOwner(h.db)
	if err != nil || owner.ChatID != group || owner.ThreadID != topic || owner.LanguageCode != "de-DE" {
		t.Fatalf("stored owner %+v, %v", owner, err)
	}
	h.tg.SendUserMessage(telegramtest.UserMessage{ChatID: group, From: 78, Text: "/status", ThreadID: topic, LanguageCode: "de-DE"})
	status := h.waitMessage("status", func(m telegramtest.Message) bool {
		return m.ChatID == group && strings.Contains(m.Text, "Ereignisse: an")
	})
	if status.ThreadID != topic || !status.DisableNotification {
		t.Errorf("the answer to /status went to topic %d, silent %v; want topic %d, silent", status.ThreadID, status.DisableNotification, topic)
	}

	h.stop()
	h.start(nil)
	h.list()
	h.list(mapping(8080, "192.168.77.21", "game"))
	alert := h.waitMessage("alert after a restart", func(m telegramtest.Message) bool { return m.ChatID == group && strings.Contains(m.Text, "8080") })
	if alert.ThreadID != topic {
		t.Errorf("after a restart the alert went to topic %d, want %d", alert.ThreadID, topic)
	}
	// The German owner's question and buttons are German.
	if !strings.Contains(alert.Text, "Neue Portfreigabe") || len(alert.Buttons) == 0 || alert.Buttons[0][0].Text != "✅ Erlauben" || alert.Buttons[0][1].Text != "⛔ Sperren" {
		t.Errorf("the German owner's question = %q, buttons %+v", alert.Text, alert.Buttons)
	}
	if alert.DisableNotification {
		t.Error("a question arrived without a sound outside quiet hours")
	}
}

// DOORMAN_TELEGRAM_TOPIC_ID puts a configured group's messages in a topic.
func TestConfiguredTopic(t *testing.T) {
	const group = int64(-1001234567890)
	h := newHarnessWith(t, group, func(o *OutboxConfig, _ *Config) {
		a, err := NewAudience(AudienceConfig{TopicID: 42})
		if err != nil {
			t.Fatal(err)
		}
		o.Audience = a
	})
	msg := h.alertFor(mapping(8080, "192.168.77.21", "game"))
	if msg.ThreadID != 42 || msg.ChatID != group {
		t.Errorf("alert went to chat %d topic %d, want %d topic 42", msg.ChatID, msg.ThreadID, group)
	}
}

// Questions ring; in quiet hours only a risky one does. Notices never do.
func TestWhatRings(t *testing.T) {
	always, err := ParseQuietHours("00:00-24:00")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		quiet  QuietHours
		port   uint16
		silent bool
	}{
		{"ordinary share, no quiet hours", QuietHours{}, 40123, false},
		{"ordinary share in quiet hours", always, 40123, true},
		{"risky share in quiet hours", always, 3389, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarnessWith(t, ownerChat, func(o *OutboxConfig, b *Config) { o.QuietHours, b.QuietHours = tt.quiet, tt.quiet })
			msg := h.alertFor(mapping(tt.port, "192.168.77.21", "an app"))
			if msg.DisableNotification != tt.silent {
				t.Errorf("question silent = %v, want %v", msg.DisableNotification, tt.silent)
			}
			h.tg.SendText(ownerChat, ownerUser, "/status")
			status := h.waitMessage("status", func(m telegramtest.Message) bool { return strings.Contains(m.Text, "Status") })
			if !status.DisableNotification {
				t.Error("the answer to /status rang")
			}
			if quiet := strings.Contains(status.Text, "Quiet hours 00:00-24:00: on now"); quiet != tt.quiet.On() {
				t.Errorf("/status says quiet hours %v, want %v:\n%s", quiet, tt.quiet.On(), status.Text)
			}
		})
	}
}

// A German owner's command menu and commands are German; DOORMAN_LANG wins
// over the language of who paired.
func TestLanguageSetting(t *testing.T) {
	h := newHarnessWith(t, ownerChat, func(o *OutboxConfig, _ *Config) {
		a, err := NewAudience(AudienceConfig{Lang: German})
		if err != nil {
			t.Fatal(err)
		}
		o.Audience = a
	})
	h.tg.SendText(ownerChat, ownerUser, "/help")
	help := h.waitMessage("help", func(m telegramtest.Message) bool { return strings.Contains(m.Text, "Doorman") })
	if !strings.Contains(help.Text, "überwacht die Portfreigaben") {
		t.Errorf("help is not German:\n%s", help.Text)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(h.tg.Commands()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if cmds := h.tg.Commands(); len(cmds) == 0 || cmds[0].Description != "aktuelle Portfreigaben und ihr Stand" {
		t.Errorf("with DOORMAN_LANG=de everybody's menu = %+v", cmds)
	}
}

// The pairing line carries the link that hands the code over with a tap.
func TestPairingLink(t *testing.T) {
	h := newHarnessWith(t, 0, nil)
	code := h.pairingCode()
	if link := <-h.links; link != "https://t.me/"+h.tg.BotUsername()+"?start="+code {
		t.Errorf("link = %q for code %q", link, code)
	}
	// What Telegram sends when the link is tapped pairs the chat.
	h.tg.SendText(4004, 78, "/start "+code)
	h.waitMessage("welcome", func(m telegramtest.Message) bool { return m.ChatID == 4004 && strings.Contains(m.Text, "paired") })

	for _, tt := range []struct{ user, want string }{
		{"doorman_home_bot", "https://t.me/doorman_home_bot?start=ABCDE-FGHJK"},
		{"", ""},
		{"evil.example/x?", ""},
	} {
		if got := pairingLink(tt.user, "ABCDE-FGHJK"); got != tt.want {
			t.Errorf("pairingLink(%q) = %q, want %q", tt.user, got, tt.want)
		}
	}
}

// A topic that is gone (deleted, or a wrong DOORMAN_TELEGRAM_TOPIC_ID) does
// not lose messages: they go to the chat's main thread.
func TestTopicGone(t *testing.T) {
	const group = int64(-1001234567890)
	h := newHarnessWith(t, group, func(o *OutboxConfig, _ *Config) {
		a, err := NewAudience(AudienceConfig{TopicID: 42})
		if err != nil {
			t.Fatal(err)
		}
		o.Audience = a
	})
	h.tg.SetTopicGone(group, 42)
	msg := h.alertFor(mapping(8080, "192.168.77.21", "game"))
	if msg.ThreadID != 0 || msg.ChatID != group {
		t.Errorf("alert went to chat %d topic %d, want %d's main thread", msg.ChatID, msg.ThreadID, group)
	}
}

// A device opening shares like malware does rings even in quiet hours.
func TestBusyDeviceRingsInQuietHours(t *testing.T) {
	always, err := ParseQuietHours("00:00-24:00")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWith(t, ownerChat, func(o *OutboxConfig, b *Config) { o.QuietHours, b.QuietHours = always, always })
	h.list()
	var ms []watcher.Mapping
	for i := range 8 {
		ms = append(ms, mapping(uint16(41000+i), "192.168.77.66", "x"))
	}
	h.list(ms...)
	msg := h.waitMessage("busy device", func(m telegramtest.Message) bool { return strings.Contains(m.Text, "Unusually active device") })
	if msg.DisableNotification {
		t.Error("the busy device's message arrived without a sound in quiet hours")
	}
}
