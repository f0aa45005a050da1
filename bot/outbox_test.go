package bot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/testlog"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/storage/storagetest"
	"github.com/doorman-upnp/doorman/watcher"
)

func (h *harness) waitText(want string) telegramtest.Message {
	h.t.Helper()
	msg, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return strings.Contains(m.Text, want) })
	if err != nil {
		h.t.Fatalf("no message with %q: %v", want, err)
	}
	return msg
}

func (h *harness) outboxLen() int {
	var n int
	h.db.View(func(tx *storage.Tx) error { _, _, _, n = tx.Count(); return nil })
	return n
}

// A mistyped DOORMAN_TELEGRAM_CHAT_ID: nothing can be delivered, and
// nothing is lost. Once the setting is fixed and doorman restarted, what
// waited reaches the right chat, once.
func TestWrongChatThenFixed(t *testing.T) {
	const wrong = int64(1002)
	h := newHarnessChat(t, wrong, nil)
	h.tg.SetChatUnreachable(wrong, true)
	h.list()
	h.list(mapping(8080, "192.168.77.21", "web"), mapping(8081, "192.168.77.22", "game"))
	time.Sleep(300 * time.Millisecond)
	if n := len(h.tg.Messages()); n != 0 {
		t.Fatalf("%d messages to a chat Telegram does not know", n)
	}
	if n := h.outboxLen(); n != 2 {
		t.Fatalf("%d items queued, want the 2 questions", n)
	}
	h.stop()
	h.chat = ownerChat
	h.start(nil)
	for _, port := range []string{"<b>8080</b>", "<b>8081</b>"} {
		if msg := h.waitText(port); msg.ChatID != ownerChat {
			t.Errorf("question %s went to chat %d", port, msg.ChatID)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(h.tg.Messages()); n != 2 {
		t.Errorf("%d messages, want each question once", n)
	}
	// The questions work in the new chat.
	var msg telegramtest.Message
	for _, m := range h.tg.Messages() {
		if strings.Contains(m.Text, "<b>8080</b>") {
			msg = m
		}
	}
	if ans := h.press(ownerUser, msg, msg.Buttons[0][0].CallbackData); !strings.Contains(ans.Text, "Allowing") {
		t.Errorf("Allow in the fixed chat: %q", ans.Text)
	}
}

// The bot removed from the paired chat: the question waits, and after
// /unpair and pairing another chat it is asked there, once.
func TestRefusedChatThenRepaired(t *testing.T) {
	const gone = int64(4004)
	h := newHarnessChat(t, 0, nil)
	h.tg.SendText(gone, ownerUser, "/start "+h.pairingCode())
	h.waitText("paired")
	h.tg.SetChatUnreachable(gone, true)
	h.list()
	h.list(mapping(8080, "192.168.77.21", "web"))
	time.Sleep(200 * time.Millisecond)
	h.tg.SendText(gone, ownerUser, "/unpair")
	code := h.pairingCode()
	h.tg.SendText(ownerChat, ownerUser, "/start "+code)
	if msg := h.waitText("8080"); msg.ChatID != ownerChat {
		t.Errorf("question went to chat %d", msg.ChatID)
	}
	time.Sleep(200 * time.Millisecond)
	n := 0
	for _, m := range h.tg.Messages() {
		if strings.Contains(m.Text, "8080") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the question was sent %d times, want once", n)
	}
}

// A chat Telegram refuses holds up its own items only: an edit of a
// message in another chat goes on meanwhile, and the refused items go once
// the chat works again.
func TestRefusedChatDoesNotBlockOthers(t *testing.T) {
	h := newHarness(t, nil)
	first := h.alertFor(mapping(8080, "192.168.77.21", "web"))
	const moved = int64(1004)
	h.engine.SetChat(moved)
	h.tg.SetChatUnreachable(moved, true)
	h.list(mapping(8080, "192.168.77.21", "web"), mapping(8081, "192.168.77.22", "game"))
	time.Sleep(100 * time.Millisecond)
	if _, err := h.engine.Decide(h.ctx(), 1, "allow", storage.User{ID: ownerUser, Name: "owner"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.tg.WaitEdit(h.ctx(), func(e telegramtest.Edit) bool { return e.MessageID == first.MessageID && e.ChatID == ownerChat }); err != nil {
		t.Fatalf("the edit in the working chat waited behind the refused one: %v", err)
	}
	if n := len(h.tg.Messages()); n != 1 {
		t.Errorf("%d messages while the owner chat is refused, want the first question only", n)
	}
	h.tg.SetChatUnreachable(moved, false)
	if msg := h.waitText("<b>8081</b>"); msg.ChatID != moved {
		t.Errorf("question went to %d", msg.ChatID)
	}
}

// A group that became a supergroup: Telegram answers with
// migrate_to_chat_id, and doorman writes there from then on, across a
// restart with DOORMAN_TELEGRAM_CHAT_ID still naming the group.
func TestGroupBecameSupergroup(t *testing.T) {
	const group, supergroup = int64(-4242), int64(-1004242)
	h := newHarnessChat(t, group, nil)
	h.tg.SetChatMigrated(group, supergroup)
	h.list()
	h.list(mapping(8080, "192.168.77.21", "web"))
	if msg := h.waitText("<b>8080</b>"); msg.ChatID != supergroup {
		t.Errorf("question went to %d", msg.ChatID)
	}
	if c := h.engine.Chat(); c != supergroup {
		t.Errorf("owner chat = %d, want the supergroup", c)
	}
	h.stop()
	h.start(nil)
	if c := h.engine.Chat(); c != supergroup {
		t.Errorf("owner chat after a restart = %d, want the supergroup", c)
	}
	h.list(mapping(8080, "192.168.77.21", "web"), mapping(8081, "192.168.77.22", "game"))
	if msg := h.waitText("<b>8081</b>"); msg.ChatID != supergroup {
		t.Errorf("question after the restart went to %d", msg.ChatID)
	}
	if n := h.tg.Calls("sendMessage"); n != 3 {
		t.Errorf("%d sendMessage calls, want one refused and two delivered", n)
	}
}

// A question asked while Telegram was down, and superseded by a change
// before Telegram came back, is not sent: only the newer question is.
func TestSupersededQuestionIsNotSent(t *testing.T) {
	h := newHarness(t, nil)
	h.list()
	h.tg.Fail("sendMessage", telegramtest.Failure{Times: -1, Status: 502})
	h.list(mapping(8080, "192.168.77.21", "web"))
	h.list(mapping(8080, "192.168.77.99", "other"))
	// A try under way may have rendered the old question before the
	// change; let it fail first (that race is TestQuestionMootOnTheWay's).
	for n := h.tg.Calls("sendMessage"); h.tg.Calls("sendMessage") <= n; {
		time.Sleep(5 * time.Millisecond)
	}
	h.tg.ClearFailures()
	h.waitText("192.168.77.99")
	time.Sleep(200 * time.Millisecond)
	if msgs := h.tg.Messages(); len(msgs) != 1 {
		t.Errorf("%d messages, want only the newer question", len(msgs))
	}
	if n := h.outboxLen(); n != 0 {
		t.Errorf("%d items left", n)
	}
}

// A question superseded while its sendMessage was on the way is brought up
// to date once Telegram took it: its edit waits in the outbox behind the
// send, so it keeps no buttons that no longer apply.
func TestQuestionMootOnTheWay(t *testing.T) {
	h := newHarness(t, nil)
	h.list()
	h.tg.SetLatency("sendMessage", 300*time.Millisecond)
	h.list(mapping(8080, "192.168.77.21", "web"))
	deadline := time.Now().Add(5 * time.Second)
	for h.tg.Calls("sendMessage") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	h.list(mapping(8080, "192.168.77.99", "other"))
	h.tg.SetLatency("sendMessage", 0)
	first := h.waitText("192.168.77.21")
	edit, err := h.tg.WaitEdit(h.ctx(), func(e telegramtest.Edit) bool { return e.MessageID == first.MessageID })
	if err != nil {
		t.Fatalf("the moot question was not edited: %v", err)
	}
	if edit.Buttons != nil {
		t.Errorf("the moot question kept its buttons: %+v", edit.Buttons)
	}
}

// A device that flips shares for an hour fills the outbox with notices and
// edits. Another device's new question still goes out within a pacing
// interval or two, at Telegram's real pace, and the edits of one message
// are done by one call.
func TestQuestionOvertakesAFloodedQueue(t *testing.T) {
	h := newHarnessWith(t, ownerChat, func(o *OutboxConfig, _ *Config) { o.Pace = Pace{} })
	flipper := mapping(9000, "192.168.77.66", "flip")
	first := h.alertFor(flipper)
	err := h.db.Update(func(tx *storage.Tx) error {
		for range 300 {
			if err := tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxEdit, AlertID: 1, ChatID: ownerChat}); err != nil {
				return err
			}
			n := &storage.Notice{Kind: storage.NoticeClosedAgain, Mapping: flipper}
			if err := tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxNotice, ChatID: ownerChat, Notice: n}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	start := time.Now()
	h.list(flipper, mapping(8443, "192.168.77.21", "other device"))
	h.waitText("<b>8443</b>")
	took := time.Since(start)
	t.Logf("the question went out %s after it was queued behind %d items", took, 600)
	if took > 2500*time.Millisecond {
		t.Errorf("the question took %s behind the flood", took)
	}
	edits := 0
	for _, e := range h.tg.Edits() {
		if e.MessageID == first.MessageID {
			edits++
		}
	}
	if edits > 1 {
		t.Errorf("%d edits of one message, want the 300 queued done by one", edits)
	}
	if sent := len(h.tg.Messages()); sent > 6 {
		t.Errorf("%d messages in about 3 s, faster than Telegram's pace", sent)
	}
}

// A notice Telegram took is not sent again when writing that down fails:
// the retry only writes it down.
func TestNoticeSentOnceWhenTheWriteFails(t *testing.T) {
	tg := telegramtest.NewServer(botToken)
	t.Cleanup(tg.Close)
	db := storagetest.Open(t)
	api, err := NewTelegramAPI(TelegramConfig{Token: botToken, BaseURL: tg.URL})
	if err != nil {
		t.Fatal(err)
	}
	o := NewOutbox(OutboxConfig{API: api, DB: db, Logger: testlog.New(t, slog.LevelInfo), MinBackoff: 10 * time.Millisecond, Pace: testPace})
	var failed atomic.Int32
	o.update = func(fn func(tx *storage.Tx) error) error {
		if failed.Add(1) == 1 {
			return errors.New("disk full")
		}
		return db.Update(fn)
	}
	m := watcher.Mapping{Router: testRouter, Service: testSvc, Protocol: "TCP", ExternalPort: 23, InternalClient: "192.168.77.30", InternalPort: 23}
	if err := db.Update(func(tx *storage.Tx) error {
		return tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxNotice, ChatID: ownerChat, Notice: &storage.Notice{Kind: storage.NoticeClosedAgain, Mapping: m}})
	}); err != nil {
		t.Fatal(err)
	}
	drainOutbox(t, o)
	if failed.Load() < 2 {
		t.Fatal("the write did not fail")
	}
	if n := len(tg.Messages()); n != 1 {
		t.Errorf("%d messages, want the notice once", n)
	}
}

// syncBuffer is a log the test reads while the outbox writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A refused chat is tried again now and then, not hammered, and the log
// says once what is wrong.
func TestRefusedChatIsLoggedOnce(t *testing.T) {
	const wrong = int64(1002)
	var log syncBuffer
	h := newHarnessWith(t, wrong, func(o *OutboxConfig, _ *Config) {
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&log, testlog.Writer(t)), nil))
	})
	h.tg.SetChatUnreachable(wrong, true)
	h.list()
	h.list(mapping(8080, "192.168.77.21", "web"))
	time.Sleep(time.Second)
	if n := strings.Count(log.String(), "Telegram refuses the owner chat"); n != 1 {
		t.Errorf("the refusal is logged %d times, want once", n)
	}
	// MaxBackoff is 200 ms here: about five tries in a second.
	if n := h.tg.Calls("sendMessage"); n < 2 || n > 7 {
		t.Errorf("%d tries in a second", n)
	}
	h.tg.SetChatUnreachable(wrong, false)
	h.waitText("<b>8080</b>")
	for range 100 {
		if strings.Contains(log.String(), "Telegram accepts the chat again") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(log.String(), "Telegram accepts the chat again") {
		t.Error("the log does not say the chat works again")
	}
}

// drainOutbox runs o until its queue is empty, failing after 2 s, and stops
// it when the test ends.
func drainOutbox(t *testing.T, o *Outbox) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for range 200 {
		if o.Len() == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := o.Len(); n != 0 {
		t.Fatalf("%d items left", n)
	}
}
