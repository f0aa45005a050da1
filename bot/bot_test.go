package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/approvals/approvalstest"
	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/testlog"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/storage/storagetest"
	"github.com/doorman-upnp/doorman/watcher"
)

const (
	botToken   = "123456:ABCdefGhIJKlmnOPQRstuVWXyz0123456789"
	ownerChat  = int64(1001)
	ownerUser  = int64(501)
	strangerID = int64(666)
	testRouter = "http://192.168.77.1:5000/rootDesc.xml"
	testSvc    = "urn:schemas-upnp-org:service:WANIPConnection:2"
)

// harness runs a Bot against the fake Telegram with a real database and
// engine and a fake router.
type harness struct {
	t      *testing.T
	tg     *telegramtest.Server
	db     *storage.DB
	engine *approvals.Engine
	router *approvalstest.Router
	cancel context.CancelFunc
	done   chan struct{}
	chat   int64
	codes  chan string
	links  chan string
	// configure, when set, changes the outbox's and the bot's settings
	// before they start.
	configure func(*OutboxConfig, *Config)
}

func (h *harness) pairingCode() string {
	h.t.Helper()
	select {
	case c := <-h.codes:
		return c
	case <-time.After(5 * time.Second):
		h.t.Fatal("no pairing code shown")
	}
	return ""
}

func newHarness(t *testing.T, allowed []int64) *harness {
	t.Helper()
	return newHarnessChat(t, ownerChat, allowed)
}

// newHarnessChat starts a harness whose configured chat is chat; 0 starts
// it unpaired, showing a pairing code.
func newHarnessChat(t *testing.T, chat int64, allowed []int64) *harness {
	t.Helper()
	tg := telegramtest.NewServer(botToken)
	t.Cleanup(tg.Close)
	db := storagetest.Open(t)
	h := &harness{t: t, tg: tg, db: db, router: &approvalstest.Router{}, chat: chat, codes: make(chan string, 10), links: make(chan string, 10)}
	h.start(allowed)
	return h
}

func (h *harness) start(allowed []int64) {
	h.t.Helper()
	api, err := NewTelegramAPI(TelegramConfig{Token: botToken, BaseURL: h.tg.URL})
	if err != nil {
		h.t.Fatal(err)
	}
	logger := testlog.New(h.t, slog.LevelInfo)
	ocfg := OutboxConfig{API: api, DB: h.db, Logger: logger, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Location: time.UTC, Pace: testPace}
	bcfg := Config{API: api, DB: h.db, ChatID: h.chat, AllowedUsers: allowed,
		ShowPairingCode: func(c PairingCode) { h.codes <- c.Code; h.links <- c.Link }, PollTimeout: time.Second, Location: time.UTC, Logger: logger,
		Status: func() []watcher.ServiceStatus {
			return []watcher.ServiceStatus{{Router: testRouter, Service: testSvc, Events: true, LastList: time.Now()}}
		}}
	if h.configure != nil {
		h.configure(&ocfg, &bcfg)
	}
	outbox := NewOutbox(ocfg)
	h.engine, err = approvals.New(approvals.Config{DB: h.db, Router: h.router, ChatID: h.chat, Wake: outbox.Wake, Logger: logger,
		DigestPager: NewDigestPager(ocfg.Audience, 0, time.UTC)})
	if err != nil {
		h.t.Fatal(err)
	}
	bcfg.Engine, bcfg.Outbox = h.engine, outbox
	b, err := New(bcfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := b.StartPairing(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		b.Run(ctx)
	}()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

func mapping(port uint16, client, desc string) watcher.Mapping {
	return watcher.Mapping{Router: testRouter, Service: testSvc, Protocol: "TCP", ExternalPort: port, InternalClient: client,
		InternalPort: port, Enabled: true, Description: desc, Origin: watcher.OriginFromDescription(desc)}
}

func (h *harness) list(ms ...watcher.Mapping) approvals.Changes {
	h.t.Helper()
	ch, err := h.engine.HandleListing(context.Background(), approvals.Listing{Router: testRouter, Service: testSvc, Mappings: ms, Complete: true})
	if err != nil {
		h.t.Fatal(err)
	}
	return ch
}

// alertFor lists ms once to get past the first-start report, then adds m and
// waits for its alert.
func (h *harness) alertFor(m watcher.Mapping) telegramtest.Message {
	h.t.Helper()
	h.list()
	h.list(m)
	msg, err := h.tg.WaitMessage(h.ctx(), func(msg telegramtest.Message) bool { return strings.Contains(msg.Text, "New port share") })
	if err != nil {
		h.t.Fatal(err)
	}
	return msg
}

func (h *harness) press(from int64, msg telegramtest.Message, data string) telegramtest.CallbackAnswer {
	h.t.Helper()
	id := h.tg.PressButton(msg.ChatID, from, msg.MessageID, data)
	a, err := h.tg.WaitCallbackAnswer(h.ctx(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func TestAlertShowsTheShareSafely(t *testing.T) {
	h := newHarness(t, nil)
	m := mapping(8080, "192.168.77.21", `<b>free</b> <a href="http://x">prize</a> & more`)
	m.LeaseDuration = 90 * time.Minute
	msg := h.alertFor(m)
	if msg.ChatID != ownerChat || msg.ParseMode != "HTML" {
		t.Errorf("message %+v", msg)
	}
	for _, want := range []string{"192.168.77.21", "TCP <b>8080</b> open to the internet", "&lt;b&gt;free&lt;/b&gt; &lt;a href=&#34;http://x&#34;&gt;prize&lt;/a&gt; &amp; more", "UPnP", "1h30m left"} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("alert lacks %q:\n%s", want, msg.Text)
		}
	}
	if len(msg.Buttons) != 3 || msg.Buttons[1][0].CallbackData != "d:1" || msg.Buttons[2][0].CallbackData != "x:1" || len(msg.Buttons[0]) != 2 || msg.Buttons[0][0].Text != "✅ Allow" || msg.Buttons[0][1].Text != "⛔ Block" {
		t.Fatalf("buttons = %+v", msg.Buttons)
	}
	for _, b := range msg.Buttons[0] {
		if len(b.CallbackData) > 64 {
			t.Errorf("callback data %q is longer than 64 bytes", b.CallbackData)
		}
	}
}

func TestBlockPress(t *testing.T) {
	h := newHarness(t, []int64{ownerUser})
	m := mapping(3389, "192.168.77.40", "RDP")
	msg := h.alertFor(m)
	ans := h.press(ownerUser, msg, msg.Buttons[0][1].CallbackData)
	if !strings.Contains(ans.Text, "Closing TCP 3389") {
		t.Errorf("answer = %q", ans.Text)
	}
	edit, err := h.tg.WaitEdit(h.ctx(), func(e telegramtest.Edit) bool { return e.MessageID == msg.MessageID })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(edit.Text, "Blocked</b> by") || edit.Buttons != nil {
		t.Errorf("edit = %+v", edit)
	}
	if d := h.router.Deletes(); len(d) != 1 || d[0] != m.Key() {
		t.Errorf("deletes = %+v", d)
	}
	// A second press on the decided alert changes nothing.
	if ans := h.press(ownerUser, msg, msg.Buttons[0][0].CallbackData); !strings.Contains(ans.Text, "Already blocked") {
		t.Errorf("answer = %q", ans.Text)
	}
	if n := len(h.router.Deletes()); n != 1 {
		t.Errorf("deletes = %d", n)
	}
}

func TestRefusedPresses(t *testing.T) {
	h := newHarness(t, []int64{ownerUser})
	msg := h.alertFor(mapping(8080, "192.168.77.21", "web"))
	allow := msg.Buttons[0][0].CallbackData
	tests := []struct {
		name string
		chat int64
		user int64
		data string
		want string
	}{
		{"stranger", ownerChat, strangerID, allow, "not allowed"},
		{"other chat", 2002, ownerUser, allow, "does not work in this chat"},
		{"forged verb", ownerChat, ownerUser, "z:1", "Unknown button"},
		{"forged id", ownerChat, ownerUser, "a:99999", "does not know this share"},
		{"garbage", ownerChat, ownerUser, strings.Repeat("a", 64), "Unknown button"},
		{"leading zero", ownerChat, ownerUser, "a:01", "Unknown button"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := h.tg.PressButton(tt.chat, tt.user, msg.MessageID, tt.data)
			a, err := h.tg.WaitCallbackAnswer(h.ctx(), id)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(a.Text, tt.want) {
				t.Errorf("answer = %q, want %q", a.Text, tt.want)
			}
		})
	}
	if len(h.tg.Edits()) != 0 || len(h.router.Deletes()) != 0 {
		t.Errorf("a refused press changed something: edits %+v deletes %+v", h.tg.Edits(), h.router.Deletes())
	}
	var a storage.Alert
	h.db.View(func(tx *storage.Tx) (err error) { a, err = tx.Alert(1); return err })
	if a.State != storage.AlertPending {
		t.Errorf("alert state %s", a.State)
	}
}

func TestRefusedBlockKeepsButtons(t *testing.T) {
	h := newHarness(t, nil)
	h.router.Err = &watcher.DeleteError{Err: errors.Join(watcher.ErrDeleteRefused, &watcher.UPnPError{Action: "DeletePortMapping", Code: 606, Description: "Action not authorized"})}
	msg := h.alertFor(mapping(445, "192.168.77.50", "SMB"))
	h.press(ownerUser, msg, msg.Buttons[0][1].CallbackData)
	edit, err := h.tg.WaitEdit(h.ctx(), func(e telegramtest.Edit) bool { return e.MessageID == msg.MessageID })
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"refused", "606", "secure mode", "FRITZ!Box"} {
		if !strings.Contains(edit.Text, want) {
			t.Errorf("edit lacks %q:\n%s", want, edit.Text)
		}
	}
	if strings.Contains(edit.Text, "Blocked</b>") || len(edit.Buttons) != 3 {
		t.Errorf("a refused block looks blocked: %+v", edit)
	}
}

func TestOutageLosesNothingAndHonoursRetryAfter(t *testing.T) {
	h := newHarness(t, nil)
	h.list()
	h.tg.Fail("sendMessage", telegramtest.Failure{Times: 2, Status: 502})
	h.tg.Fail("sendMessage", telegramtest.Failure{Times: 1, Status: 429, RetryAfter: 1})
	start := time.Now()
	h.list(mapping(8080, "192.168.77.21", "web"), mapping(8081, "192.168.77.21", "web2"))
	for _, port := range []string{"8080", "8081"} {
		if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return strings.Contains(m.Text, "<b>"+port+"</b>") }); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("delivered after %s, before retry_after", took)
	}
	if n := len(h.tg.Messages()); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
	var left int
	for range 100 {
		h.db.View(func(tx *storage.Tx) error { _, _, _, left = tx.Count(); return nil })
		if left == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if left != 0 {
		t.Errorf("%d items left in the outbox", left)
	}
}

func TestOutboxSurvivesRestart(t *testing.T) {
	h := newHarness(t, nil)
	h.list()
	h.tg.Fail("sendMessage", telegramtest.Failure{Times: -1, Status: 500})
	h.list(mapping(8080, "192.168.77.21", "web"))
	if err := h.tg.WaitBlocked(h.ctx(), "sendMessage", 0); err != nil {
		t.Log(err)
	}
	time.Sleep(100 * time.Millisecond)
	h.stop()
	h.tg.ClearFailures()
	if n := len(h.tg.Messages()); n != 0 {
		t.Fatalf("%d messages during the outage", n)
	}
	h.start(nil)
	if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return strings.Contains(m.Text, "8080") }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(h.tg.Messages()); n != 1 {
		t.Errorf("%d messages after restart, want 1", n)
	}
}

// Telegram takes a message, and doorman stops before the answer comes:
// the send is let finish and recorded, so the restart does not show the
// alert twice.
func TestStopDuringSendShowsAlertOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.list()
	h.tg.SetLatency("sendMessage", 300*time.Millisecond)
	h.list(mapping(8080, "192.168.77.21", "web"))
	if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return strings.Contains(m.Text, "8080") }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.stop()
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("stopped after %s: the send under way was cut short", took)
	}
	var left int
	h.db.View(func(tx *storage.Tx) error { _, _, _, left = tx.Count(); return nil })
	if left != 0 {
		t.Errorf("%d items left in the outbox after a send Telegram answered", left)
	}
	h.tg.SetLatency("sendMessage", 0)
	h.start(nil)
	time.Sleep(200 * time.Millisecond)
	if n := len(h.tg.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

// A Telegram that does not answer does not hold a stop for longer than
// deliverGrace.
func TestStopDuringHungSendIsBounded(t *testing.T) {
	h := newHarness(t, nil)
	h.list()
	h.tg.Fail("sendMessage", telegramtest.Failure{Hang: true})
	h.list(mapping(8080, "192.168.77.21", "web"))
	if err := h.tg.WaitBlocked(h.ctx(), "sendMessage", 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.stop()
	took := time.Since(start)
	t.Logf("stop took %s", took)
	if took > deliverGrace+time.Second {
		t.Errorf("stop took %s, want about %s", took, deliverGrace)
	}
	var left int
	h.db.View(func(tx *storage.Tx) error { _, _, _, left = tx.Count(); return nil })
	if left != 1 {
		t.Errorf("%d items in the outbox, want the unsent alert kept", left)
	}
}

func TestFirstStartReportsOnceWithButtons(t *testing.T) {
	h := newHarness(t, nil)
	h.list(mapping(80, "192.168.77.21", "web"), mapping(22, "192.168.77.22", "ssh"))
	msg, err := h.tg.WaitMessage(h.ctx(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Text, "already open") || len(msg.Buttons) != 2 {
		t.Fatalf("message = %+v", msg)
	}
	h.press(ownerUser, msg, msg.Buttons[1][1].CallbackData)
	edit, err := h.tg.WaitEdit(h.ctx(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(edit.Text, "blocked by") || len(edit.Buttons) != 1 || !strings.Contains(edit.Buttons[0][0].Text, "Allow 1") {
		t.Errorf("edit = %+v", edit)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(h.tg.Messages()); n != 1 {
		t.Errorf("%d messages, want one report", n)
	}
}

func TestCommands(t *testing.T) {
	h := newHarness(t, []int64{ownerUser})
	msg := h.alertFor(mapping(8080, "192.168.77.21", "web"))
	h.press(ownerUser, msg, msg.Buttons[0][0].CallbackData)
	if _, err := h.tg.WaitEdit(h.ctx(), nil); err != nil {
		t.Fatal(err)
	}
	waitNew := func(text string) telegramtest.Message {
		t.Helper()
		n := len(h.tg.Messages())
		h.tg.SendText(ownerChat, ownerUser, text)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if all := h.tg.Messages(); len(all) > n {
				return all[len(all)-1]
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no answer to %s", text)
		return telegramtest.Message{}
	}
	if m := waitNew("/list"); !strings.Contains(m.Text, "1 port share open") || !strings.Contains(m.Text, "trusted") {
		t.Errorf("/list = %s", m.Text)
	}
	trusted := waitNew("/trusted@" + h.tg.BotUsername())
	if !strings.Contains(trusted.Text, "Trusted services") || len(trusted.Buttons) != 1 {
		t.Fatalf("/trusted = %+v", trusted)
	}
	if m := waitNew("/blocked"); !strings.Contains(m.Text, "No blocked services") {
		t.Errorf("/blocked = %s", m.Text)
	}
	if m := waitNew("/status"); !strings.Contains(m.Text, "Events: on") || !strings.Contains(m.Text, "messages waiting: 0") {
		t.Errorf("/status = %s", m.Text)
	}
	if m := waitNew("/help"); !strings.Contains(m.Text, "Allow") {
		t.Errorf("/help = %s", m.Text)
	}
	ans := h.press(ownerUser, trusted, trusted.Buttons[0][0].CallbackData)
	if !strings.Contains(ans.Text, "Forgotten") {
		t.Errorf("forget answer = %q", ans.Text)
	}
	var rules int
	h.db.View(func(tx *storage.Tx) error { _, rules, _, _ = tx.Count(); return nil })
	if rules != 0 {
		t.Errorf("%d rules after forgetting", rules)
	}
	if m := waitNew("/list"); !strings.Contains(m.Text, "not decided") && !strings.Contains(m.Text, "waiting") {
		t.Errorf("/list after forget = %s", m.Text)
	}
	// A stranger's command is refused; another chat is ignored.
	if m := func() telegramtest.Message {
		n := len(h.tg.Messages())
		h.tg.SendText(ownerChat, strangerID, "/list")
		for range 200 {
			if all := h.tg.Messages(); len(all) > n {
				return all[len(all)-1]
			}
			time.Sleep(10 * time.Millisecond)
		}
		return telegramtest.Message{}
	}(); !strings.Contains(m.Text, "not allowed") {
		t.Errorf("stranger's /list answered %q", m.Text)
	}
	n := len(h.tg.Messages())
	h.tg.SendText(3003, ownerUser, "/list")
	time.Sleep(300 * time.Millisecond)
	for _, m := range h.tg.Messages()[n:] {
		if m.ChatID != 3003 || !strings.HasPrefix(m.Text, "/list") {
			t.Errorf("answered another chat: %+v", m)
		}
	}
	cmds := h.tg.Commands()
	if len(cmds) != 7 || cmds[0].Command != "list" || cmds[0].Description != "current port shares and their state" {
		t.Errorf("registered commands = %+v", cmds)
	}
	// The German menu follows the English one; it may still be on its way.
	deadline := time.Now().Add(5 * time.Second)
	for len(h.tg.CommandsFor("de")) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if de := h.tg.CommandsFor("de"); len(de) != 7 || de[0].Description != "aktuelle Portfreigaben und ihr Stand" {
		t.Errorf("German commands = %+v", de)
	}
}

func TestParseCallbackData(t *testing.T) {
	tests := []struct {
		in   string
		verb string
		id   uint64
		ok   bool
	}{
		{"a:1", "a", 1, true},
		{"b:18446744073709551615", "b", 18446744073709551615, true},
		{"f:7", "f", 7, true},
		{"a:0", "", 0, false},
		{"a:-1", "", 0, false},
		{"a:+1", "", 0, false},
		{"a:1 ", "", 0, false},
		{"z:1", "", 0, false},
		{"a", "", 0, false},
		{"", "", 0, false},
		{"a:18446744073709551616", "", 0, false},
	}
	for _, tt := range tests {
		verb, id, ok := parseCallbackData(tt.in)
		if verb != tt.verb || id != tt.id || ok != tt.ok {
			t.Errorf("parseCallbackData(%q) = %q %d %v", tt.in, verb, id, ok)
		}
	}
}

func FuzzParseCallbackData(f *testing.F) {
	for _, s := range []string{"a:1", "b:42", "f:9", "x", "a:", ":1", "a:1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		verb, id, ok := parseCallbackData(data)
		if !ok {
			return
		}
		if callbackData(verb, id) != data {
			t.Errorf("%q parsed as %q %d, which writes back differently", data, verb, id)
		}
	})
}

// 401 (token revoked) and 403 (bot removed from the chat) keep alerts in
// the outbox until the owner fixes it; nothing is dropped or sent twice.
func TestRejectedBotKeepsAlerts(t *testing.T) {
	for _, status := range []int{401, 403} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			h := newHarness(t, nil)
			h.list()
			h.tg.Fail("sendMessage", telegramtest.Failure{Times: 3, Status: status})
			h.list(mapping(8080, "192.168.77.21", "web"))
			if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return strings.Contains(m.Text, "<b>8080</b>") }); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			if n := len(h.tg.Messages()); n != 1 {
				t.Errorf("%d messages, want the alert once", n)
			}
			if calls := h.tg.Calls("sendMessage"); calls != 4 {
				t.Errorf("%d sendMessage calls, want 3 refused and 1 accepted", calls)
			}
		})
	}
}

// testPace lets tests send as fast as they like; pacing has tests of its
// own.
var testPace = Pace{Interval: time.Microsecond, GroupInterval: time.Microsecond}
