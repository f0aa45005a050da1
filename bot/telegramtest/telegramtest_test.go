package telegramtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
)

const (
	token  = "123456:AAH-test_token_0123456789abcdefghij"
	chatID = int64(424242)
	userID = int64(777)
)

func newBot(t *testing.T) (*telegramtest.Server, *tgbotapi.BotAPI) {
	t.Helper()
	srv := telegramtest.NewServer(token)
	t.Cleanup(srv.Close)
	bot, err := tgbotapi.NewBotAPIWithAPIEndpoint(token, srv.Endpoint())
	if err != nil {
		t.Fatalf("NewBotAPIWithAPIEndpoint: %v", err)
	}
	return srv, bot
}

func timeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// apiError unwraps the library's error type, failing the test if err is
// something else (a transport or decoding error).
func apiError(t *testing.T, err error) *tgbotapi.Error {
	t.Helper()
	var e *tgbotapi.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want *tgbotapi.Error", err, err)
	}
	return e
}

func alert(chat int64, text string) tgbotapi.MessageConfig {
	msg := tgbotapi.NewMessage(chat, text)
	msg.ParseMode = tgbotapi.ModeHTML
	msg.ReplyMarkup = tgbotapi.NewInlineKeyboardMarkup(
		tgbotapi.NewInlineKeyboardRow(
			tgbotapi.NewInlineKeyboardButtonData("Acknowledge", "ack:1"),
			tgbotapi.NewInlineKeyboardButtonData("Mute 1h", "mute:1:3600"),
		),
		tgbotapi.NewInlineKeyboardRow(tgbotapi.NewInlineKeyboardButtonURL("Router", "http://192.168.1.1/")),
	)
	return msg
}

// alertButtons is what alert's keyboard should be recorded as; URL buttons
// keep only their text.
func alertButtons() [][]telegramtest.Button {
	return [][]telegramtest.Button{
		{{Text: "Acknowledge", CallbackData: "ack:1"}, {Text: "Mute 1h", CallbackData: "mute:1:3600"}},
		{{Text: "Router"}},
	}
}

func TestGetMe(t *testing.T) {
	srv, bot := newBot(t)
	if bot.Self.ID != 123456 || !bot.Self.IsBot || bot.Self.UserName != srv.BotUsername() || bot.Self.FirstName == "" {
		t.Errorf("getMe = %+v, want bot 123456 named %q", bot.Self, srv.BotUsername())
	}
	if srv.BotID() != 123456 {
		t.Errorf("BotID() = %d, want the token's prefix", srv.BotID())
	}
	if got := srv.Calls("getMe"); got != 1 {
		t.Errorf("Calls(getMe) = %d, want 1", got)
	}
}

func TestSendMessageIsRecorded(t *testing.T) {
	srv, bot := newBot(t)

	msg := alert(chatID, "<b>Port 22</b> opened by <code>10.0.0.7</code> &amp; kept &lt;open&gt;")
	msg.DisableWebPagePreview = true
	before := time.Now()
	sent, err := bot.Send(msg)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if sent.MessageID != 1 || sent.Chat.ID != chatID || sent.Chat.Type != "private" || sent.From == nil || !sent.From.IsBot {
		t.Errorf("returned message = %+v, want id 1 in private chat %d from the bot", sent, chatID)
	}
	// Telegram answers with the rendered text; markup becomes entities.
	if want := "Port 22 opened by 10.0.0.7 & kept <open>"; sent.Text != want {
		t.Errorf("returned text = %q, want %q", sent.Text, want)
	}
	if sent.ReplyMarkup == nil || sent.ReplyMarkup.InlineKeyboard[0][1].CallbackData == nil ||
		*sent.ReplyMarkup.InlineKeyboard[0][1].CallbackData != "mute:1:3600" {
		t.Errorf("returned reply_markup = %+v, want the keyboard echoed", sent.ReplyMarkup)
	}
	if sent.Time().Unix() < before.Unix() {
		t.Errorf("returned date %v is before the send at %v", sent.Time(), before)
	}

	second, err := bot.Send(tgbotapi.NewMessage(chatID, "plain"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	other, err := bot.Send(tgbotapi.NewMessage(-100, "group"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if second.MessageID != 2 || other.MessageID != 1 || other.Chat.Type != "group" {
		t.Errorf("message ids = %d, %d (chat type %q), want 2 and a fresh 1 in the group", second.MessageID, other.MessageID, other.Chat.Type)
	}

	got := srv.Messages()
	if len(got) != 3 {
		t.Fatalf("Messages() has %d entries, want 3", len(got))
	}
	first := got[0]
	if first.ChatID != chatID || first.MessageID != 1 || first.Text != msg.Text || first.ParseMode != "HTML" ||
		!first.DisableWebPagePreview || first.Time.Before(before.Add(-time.Second)) {
		t.Errorf("first recorded message = %+v", first)
	}
	if !reflect.DeepEqual(first.Buttons, alertButtons()) {
		t.Errorf("recorded buttons = %+v, want %+v", first.Buttons, alertButtons())
	}
	if got[1].Buttons != nil || got[1].ParseMode != "" || got[1].DisableWebPagePreview {
		t.Errorf("plain message recorded as %+v, want no keyboard, parse mode or flags", got[1])
	}

	// Callers get copies, so they cannot corrupt the log.
	got[0].Buttons[0][0].Text = "changed"
	if srv.Messages()[0].Buttons[0][0].Text != "Acknowledge" {
		t.Error("Messages() returned shared button slices")
	}
}

func TestSendMessageRejected(t *testing.T) {
	long := strings.Repeat("x", 65)
	tests := []struct {
		name string
		msg  func() tgbotapi.MessageConfig
		want string
	}{
		{"empty text", func() tgbotapi.MessageConfig { return tgbotapi.NewMessage(chatID, "") }, "Bad Request: message text is empty"},
		{"unescaped less-than", func() tgbotapi.MessageConfig { return alert(chatID, "device <unknown> joined") }, `Bad Request: can't parse entities: Unsupported start tag "unknown"`},
		{"unclosed tag", func() tgbotapi.MessageConfig { return alert(chatID, "<b>bold") }, "Bad Request: can't parse entities: Can't find end tag"},
		{"crossed tags", func() tgbotapi.MessageConfig { return alert(chatID, "<b><i>x</b></i>") }, "Bad Request: can't parse entities: Unmatched end tag"},
		{"only markup", func() tgbotapi.MessageConfig { return alert(chatID, "<b></b>") }, "Bad Request: message text is empty"},
		{"too long", func() tgbotapi.MessageConfig { return tgbotapi.NewMessage(chatID, strings.Repeat("é", 4097)) }, "Bad Request: message is too long"},
		{"unsupported parse mode", func() tgbotapi.MessageConfig {
			m := tgbotapi.NewMessage(chatID, "x")
			m.ParseMode = "XML"
			return m
		}, "Bad Request: unsupported parse_mode"},
		{"callback data over 64 bytes", func() tgbotapi.MessageConfig {
			m := tgbotapi.NewMessage(chatID, "x")
			m.ReplyMarkup = tgbotapi.NewInlineKeyboardMarkup(tgbotapi.NewInlineKeyboardRow(tgbotapi.NewInlineKeyboardButtonData("a", long)))
			return m
		}, "Bad Request: BUTTON_DATA_INVALID"},
		{"button without action", func() tgbotapi.MessageConfig {
			m := tgbotapi.NewMessage(chatID, "x")
			m.ReplyMarkup = tgbotapi.NewInlineKeyboardMarkup([]tgbotapi.InlineKeyboardButton{{Text: "a"}})
			return m
		}, "Bad Request: can't parse inline keyboard button: Text buttons are unallowed"},
		{"no chat", func() tgbotapi.MessageConfig { return tgbotapi.NewMessage(0, "x") }, "Bad Request: chat_id is empty"},
	}
	srv, bot := newBot(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bot.Send(tt.msg())
			e := apiError(t, err)
			if e.Code != 400 || !strings.HasPrefix(e.Message, tt.want) {
				t.Errorf("error = %d %q, want 400 %q...", e.Code, e.Message, tt.want)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d rejected messages were recorded", n)
	}
	if got, want := srv.Calls("sendMessage"), len(tests); got != want {
		t.Errorf("Calls(sendMessage) = %d, want %d", got, want)
	}
}

func TestEdits(t *testing.T) {
	srv, bot := newBot(t)
	sent, err := bot.Send(alert(chatID, "Port 22 <b>open</b>"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	id := sent.MessageID

	edit := tgbotapi.NewEditMessageText(chatID, id, "Port 22 <b>acknowledged</b>")
	edit.ParseMode = tgbotapi.ModeHTML
	if _, err := bot.Send(edit); err != nil {
		t.Fatalf("editMessageText: %v", err)
	}
	_, err = bot.Request(edit)
	if e := apiError(t, err); e.Code != 400 || !strings.HasPrefix(e.Message, "Bad Request: message is not modified") {
		t.Errorf("identical edit: %d %q, want 400 message is not modified", e.Code, e.Message)
	}

	keyboard := tgbotapi.NewInlineKeyboardMarkup(tgbotapi.NewInlineKeyboardRow(tgbotapi.NewInlineKeyboardButtonData("Unmute", "unmute:1")))
	markup := tgbotapi.NewEditMessageReplyMarkup(chatID, id, keyboard)
	if _, err := bot.Request(markup); err != nil {
		t.Fatalf("editMessageReplyMarkup: %v", err)
	}
	_, err = bot.Request(markup)
	if e := apiError(t, err); e.Code != 400 || !strings.HasPrefix(e.Message, "Bad Request: message is not modified") {
		t.Errorf("identical markup edit: %d %q, want 400 message is not modified", e.Code, e.Message)
	}

	for _, missing := range []tgbotapi.EditMessageTextConfig{
		tgbotapi.NewEditMessageText(chatID, 99, "x"),
		tgbotapi.NewEditMessageText(chatID+1, id, "x"),
	} {
		_, err = bot.Request(missing)
		if e := apiError(t, err); e.Code != 400 || e.Message != "Bad Request: message to edit not found" {
			t.Errorf("edit of unknown message: %d %q", e.Code, e.Message)
		}
	}

	want := []telegramtest.Edit{
		// Editing the text without reply_markup drops the keyboard.
		{ChatID: chatID, MessageID: id, Method: "editMessageText", Text: "Port 22 <b>acknowledged</b>", ParseMode: "HTML"},
		{ChatID: chatID, MessageID: id, Method: "editMessageReplyMarkup", Buttons: [][]telegramtest.Button{{{Text: "Unmute", CallbackData: "unmute:1"}}}},
	}
	if got := srv.Edits(); !reflect.DeepEqual(got, want) {
		t.Errorf("Edits() = %+v\nwant %+v", got, want)
	}
	cur, ok := srv.Current(chatID, id)
	if !ok || cur.Text != "Port 22 <b>acknowledged</b>" || !reflect.DeepEqual(cur.Buttons, want[1].Buttons) {
		t.Errorf("Current() = %+v, %v; want the edited text and keyboard", cur, ok)
	}
	if orig := srv.Messages()[0]; orig.Text != "Port 22 <b>open</b>" || !reflect.DeepEqual(orig.Buttons, alertButtons()) {
		t.Errorf("Messages() shows the edited state %+v, want the message as sent", orig)
	}

	if _, err := bot.Request(tgbotapi.NewDeleteMessage(chatID, id)); err != nil {
		t.Fatalf("deleteMessage: %v", err)
	}
	if _, ok := srv.Current(chatID, id); ok {
		t.Error("Current() still finds the deleted message")
	}
	_, err = bot.Request(tgbotapi.NewDeleteMessage(chatID, id))
	if e := apiError(t, err); e.Message != "Bad Request: message to delete not found" {
		t.Errorf("second delete: %q", e.Message)
	}
	_, err = bot.Request(tgbotapi.NewEditMessageText(chatID, id, "too late"))
	if e := apiError(t, err); e.Message != "Bad Request: message to edit not found" {
		t.Errorf("edit after delete: %q", e.Message)
	}
}

func TestPressButton(t *testing.T) {
	srv, bot := newBot(t)
	sent, err := bot.Send(alert(chatID, "Port <b>22</b> open"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	qid := srv.PressButton(chatID, userID, sent.MessageID, "ack:1")

	updates, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 5})
	if err != nil {
		t.Fatalf("GetUpdates: %v", err)
	}
	if len(updates) != 1 || updates[0].CallbackQuery == nil {
		t.Fatalf("updates = %+v, want one callback query", updates)
	}
	q := updates[0].CallbackQuery
	if q.ID != qid || q.Data != "ack:1" || q.From == nil || q.From.ID != userID || q.From.IsBot || q.From.UserName == "" || q.ChatInstance == "" {
		t.Errorf("callback query = %+v (from %+v)", q, q.From)
	}
	if q.Message == nil || q.Message.MessageID != sent.MessageID || q.Message.Chat.ID != chatID || q.Message.Text != "Port 22 open" ||
		q.Message.ReplyMarkup == nil || len(q.Message.ReplyMarkup.InlineKeyboard) != 2 {
		t.Errorf("callback query message = %+v", q.Message)
	}
	if got := updates[0].FromChat(); got == nil || got.ID != chatID {
		t.Errorf("FromChat() = %+v, want chat %d", got, chatID)
	}

	if _, err := bot.Request(tgbotapi.NewCallback(qid, "Acknowledged")); err != nil {
		t.Fatalf("answerCallbackQuery: %v", err)
	}
	ans, err := srv.WaitCallbackAnswer(timeout(t, time.Second), qid)
	if err != nil || ans != (telegramtest.CallbackAnswer{ID: qid, Text: "Acknowledged"}) {
		t.Errorf("WaitCallbackAnswer = %+v, %v", ans, err)
	}

	for name, cfg := range map[string]tgbotapi.CallbackConfig{
		"second answer": tgbotapi.NewCallbackWithAlert(qid, "again"),
		"made-up id":    tgbotapi.NewCallback("42", ""),
	} {
		_, err := bot.Request(cfg)
		if e := apiError(t, err); e.Code != 400 || !strings.Contains(e.Message, "query ID is invalid") {
			t.Errorf("%s: %d %q, want 400 query ID is invalid", name, e.Code, e.Message)
		}
	}
	if got := srv.CallbackAnswers(); len(got) != 1 {
		t.Errorf("CallbackAnswers() = %+v, want the one valid answer", got)
	}

	alertID := srv.PressButton(chatID, userID, 99, "mute")
	if _, err := bot.Request(tgbotapi.NewCallbackWithAlert(alertID, "Muted")); err != nil {
		t.Fatalf("answerCallbackQuery: %v", err)
	}
	if ans, err := srv.WaitCallbackAnswer(timeout(t, time.Second), alertID); err != nil || !ans.ShowAlert {
		t.Errorf("alert answer = %+v, %v; want ShowAlert", ans, err)
	}
}

func TestSendText(t *testing.T) {
	tests := []struct {
		text, command, args string
	}{
		{"/status", "status", ""},
		{"/mute 2h", "mute", "2h"},
		{"/status@telegramtest_bot now please", "status", "now please"},
		{"hello /status", "", ""},
		{"/ nothing", "", ""},
		{"plain", "", ""},
	}
	srv, bot := newBot(t)
	for _, tt := range tests {
		srv.SendText(chatID, userID, tt.text)
	}
	updates, err := bot.GetUpdates(tgbotapi.UpdateConfig{})
	if err != nil {
		t.Fatalf("GetUpdates: %v", err)
	}
	if len(updates) != len(tests) {
		t.Fatalf("got %d updates, want %d", len(updates), len(tests))
	}
	for i, tt := range tests {
		m := updates[i].Message
		if m == nil {
			t.Errorf("%q: update %+v has no message", tt.text, updates[i])
			continue
		}
		if m.Text != tt.text || m.Chat.ID != chatID || m.From == nil || m.From.ID != userID || m.MessageID != i+1 {
			t.Errorf("%q: message = %+v", tt.text, m)
		}
		if m.IsCommand() != (tt.command != "") || m.Command() != tt.command || m.CommandArguments() != tt.args {
			t.Errorf("%q: IsCommand %v, Command %q, args %q; want %q %q", tt.text, m.IsCommand(), m.Command(), m.CommandArguments(), tt.command, tt.args)
		}
	}

	// Users and the bot share a private chat's message ids, and user
	// messages cannot be edited by the bot.
	sent, err := bot.Send(tgbotapi.NewMessage(chatID, "reply"))
	if err != nil || sent.MessageID != len(tests)+1 {
		t.Errorf("bot message id = %d, %v; want %d", sent.MessageID, err, len(tests)+1)
	}
	_, err = bot.Request(tgbotapi.NewEditMessageText(chatID, 1, "hijack"))
	if e := apiError(t, err); e.Message != "Bad Request: message can't be edited" {
		t.Errorf("editing a user message: %q", e.Message)
	}
}

func TestGetUpdatesOffset(t *testing.T) {
	srv, bot := newBot(t)
	for _, text := range []string{"one", "two", "three"} {
		srv.SendText(chatID, userID, text)
	}
	get := func(offset, limit int) []string {
		t.Helper()
		updates, err := bot.GetUpdates(tgbotapi.UpdateConfig{Offset: offset, Limit: limit})
		if err != nil {
			t.Fatalf("GetUpdates(offset %d): %v", offset, err)
		}
		var texts []string
		for i, u := range updates {
			if i > 0 && u.UpdateID <= updates[i-1].UpdateID {
				t.Errorf("update ids not increasing: %d after %d", u.UpdateID, updates[i-1].UpdateID)
			}
			texts = append(texts, u.Message.Text)
		}
		return texts
	}
	all, err := bot.GetUpdates(tgbotapi.UpdateConfig{})
	if err != nil || len(all) != 3 {
		t.Fatalf("GetUpdates = %d updates, %v", len(all), err)
	}
	first := all[0].UpdateID

	steps := []struct {
		offset, limit int
		want          []string
	}{
		{0, 0, []string{"one", "two", "three"}}, // unconfirmed updates come again
		{0, 2, []string{"one", "two"}},
		{first + 1, 0, []string{"two", "three"}}, // confirms "one"
		{0, 0, []string{"two", "three"}},         // and it stays confirmed
		{-1, 0, []string{"three"}},               // negative offsets keep the tail
		{first + 3, 0, nil},
	}
	for _, st := range steps {
		if got := get(st.offset, st.limit); !reflect.DeepEqual(got, st.want) {
			t.Errorf("offset %d limit %d: got %q, want %q", st.offset, st.limit, got, st.want)
		}
	}

	srv.SendText(chatID, userID, "four")
	updates, err := bot.GetUpdates(tgbotapi.UpdateConfig{Offset: first + 3})
	if err != nil || len(updates) != 1 || updates[0].UpdateID != first+3 {
		t.Errorf("new update after confirmation = %+v, %v; want id %d", updates, err, first+3)
	}
}

func TestLongPoll(t *testing.T) {
	t.Run("empty after timeout", func(t *testing.T) {
		t.Parallel()
		_, bot := newBot(t)
		start := time.Now()
		updates, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 1})
		elapsed := time.Since(start)
		if err != nil || len(updates) != 0 {
			t.Fatalf("GetUpdates = %+v, %v; want none", updates, err)
		}
		if elapsed < 900*time.Millisecond || elapsed > 3*time.Second {
			t.Errorf("long poll took %v, want about 1s", elapsed)
		}
	})
	t.Run("returns when an update arrives", func(t *testing.T) {
		t.Parallel()
		srv, bot := newBot(t)
		done := make(chan []tgbotapi.Update, 1)
		go func() {
			updates, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 30})
			if err != nil {
				t.Errorf("GetUpdates: %v", err)
			}
			done <- updates
		}()
		if err := srv.WaitBlocked(timeout(t, 2*time.Second), "getUpdates", 1); err != nil {
			t.Fatal(err)
		}
		srv.PressButton(chatID, userID, 1, "ack")
		select {
		case updates := <-done:
			if len(updates) != 1 || updates[0].CallbackQuery.Data != "ack" {
				t.Errorf("updates = %+v", updates)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("long poll did not return after the button press")
		}
	})
	t.Run("newer poll ends the older one", func(t *testing.T) {
		t.Parallel()
		srv, bot := newBot(t)
		older := make(chan error, 1)
		go func() {
			_, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 30})
			older <- err
		}()
		if err := srv.WaitBlocked(timeout(t, 2*time.Second), "getUpdates", 1); err != nil {
			t.Fatal(err)
		}
		if _, err := bot.GetUpdates(tgbotapi.UpdateConfig{}); err != nil {
			t.Fatalf("newer GetUpdates: %v", err)
		}
		select {
		case err := <-older:
			if e := apiError(t, err); e.Code != 409 || !strings.HasPrefix(e.Message, "Conflict: terminated by other getUpdates request") {
				t.Errorf("older poll: %d %q, want 409 Conflict", e.Code, e.Message)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("older long poll was not ended")
		}
	})
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		failure    telegramtest.Failure
		wantCode   int    // 0: the body is not JSON and the library fails to decode it
		wantDesc   string // prefix
		wantRetry  int
		wantFailed int // calls that fail before one succeeds
	}{
		{"flood control", "sendMessage", telegramtest.Failure{Status: 429, RetryAfter: 7}, 429, "Too Many Requests: retry after 7", 7, 1},
		{"retry after implies 429", "sendMessage", telegramtest.Failure{RetryAfter: 3}, 429, "Too Many Requests: retry after 3", 3, 1},
		{"internal error", "sendMessage", telegramtest.Failure{Status: 500, Times: 2}, 500, "Internal Server Error", 0, 2},
		{"proxy 502 page", "sendMessage", telegramtest.Failure{Status: 502}, 0, "", 0, 1},
		{"502 with JSON", "sendMessage", telegramtest.Failure{Status: 502, Description: "Bad Gateway"}, 502, "Bad Gateway", 0, 1},
		{"kicked", "sendMessage", telegramtest.Failure{Status: 403}, 403, "Forbidden: bot was kicked from the group chat", 0, 1},
		{"blocked", "sendMessage", telegramtest.Failure{Status: 403, Description: "Forbidden: bot was blocked by the user"}, 403, "Forbidden: bot was blocked by the user", 0, 1},
		{"revoked token", "sendMessage", telegramtest.Failure{Status: 401}, 401, "Unauthorized", 0, 1},
		{"bad request", "sendMessage", telegramtest.Failure{Status: 400, Description: "Bad Request: chat not found"}, 400, "Bad Request: chat not found", 0, 1},
		{"any method", "", telegramtest.Failure{Status: 500}, 500, "Internal Server Error", 0, 1},
		{"method names ignore case", "SENDMESSAGE", telegramtest.Failure{Status: 500}, 500, "Internal Server Error", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, bot := newBot(t)
			srv.Fail(tt.method, tt.failure)
			for i := 0; i < tt.wantFailed; i++ {
				_, err := bot.Send(alert(chatID, "door open"))
				if err == nil {
					t.Fatalf("send %d succeeded, want a failure", i+1)
				}
				if tt.wantCode == 0 {
					var e *tgbotapi.Error
					if errors.As(err, &e) {
						t.Fatalf("got API error %+v, want a decoding error for a non-JSON body", e)
					}
					continue
				}
				e := apiError(t, err)
				if e.Code != tt.wantCode || !strings.HasPrefix(e.Message, tt.wantDesc) || e.RetryAfter != tt.wantRetry {
					t.Errorf("error = %d %q retry_after %d, want %d %q retry_after %d", e.Code, e.Message, e.RetryAfter, tt.wantCode, tt.wantDesc, tt.wantRetry)
				}
			}
			if len(srv.Messages()) != 0 {
				t.Errorf("failed sends were recorded: %+v", srv.Messages())
			}
			sent, err := bot.Send(alert(chatID, "door open"))
			if err != nil {
				t.Fatalf("send after the failures: %v", err)
			}
			if sent.MessageID != 1 || len(srv.Messages()) != 1 {
				t.Errorf("after failures: message id %d, %d recorded; want the first message", sent.MessageID, len(srv.Messages()))
			}
			if got := srv.Calls("sendMessage"); got != tt.wantFailed+1 {
				t.Errorf("Calls(sendMessage) = %d, want %d", got, tt.wantFailed+1)
			}
		})
	}

	t.Run("endless until cleared", func(t *testing.T) {
		srv, bot := newBot(t)
		srv.Fail("getChat", telegramtest.Failure{Times: -1, Status: 500})
		for i := 0; i < 3; i++ {
			if _, err := bot.GetChat(tgbotapi.ChatInfoConfig{ChatConfig: tgbotapi.ChatConfig{ChatID: chatID}}); err == nil {
				t.Fatal("getChat succeeded during an endless failure")
			}
		}
		if _, err := bot.Send(tgbotapi.NewMessage(chatID, "x")); err != nil {
			t.Errorf("other methods are affected: %v", err)
		}
		srv.ClearFailures()
		if _, err := bot.GetChat(tgbotapi.ChatInfoConfig{ChatConfig: tgbotapi.ChatConfig{ChatID: chatID}}); err != nil {
			t.Errorf("getChat after ClearFailures: %v", err)
		}
	})
}

func TestWrongTokenAndMethod(t *testing.T) {
	srv, bot := newBot(t)
	_, err := tgbotapi.NewBotAPIWithAPIEndpoint("123456:wrong", srv.Endpoint())
	if e := apiError(t, err); e.Code != 401 || e.Message != "Unauthorized" {
		t.Errorf("wrong token: %d %q, want 401 Unauthorized", e.Code, e.Message)
	}
	_, err = bot.MakeRequest("sendPigeon", nil)
	if e := apiError(t, err); e.Code != 404 || e.Message != "Not Found: method not found" {
		t.Errorf("unknown method: %d %q, want 404", e.Code, e.Message)
	}
	if _, err := bot.MakeRequest("GETME", nil); err != nil {
		t.Errorf("method names are case-insensitive, got %v", err)
	}
	reqs := srv.Requests()
	if len(reqs) != 4 || reqs[1].Authorized || !reqs[0].Authorized {
		t.Errorf("Requests() = %+v, want the rejected token marked", reqs)
	}
}

func TestHang(t *testing.T) {
	t.Run("HTTP client timeout", func(t *testing.T) {
		t.Parallel()
		srv := telegramtest.NewServer(token)
		defer srv.Close()
		bot, err := tgbotapi.NewBotAPIWithClient(token, srv.Endpoint(), &http.Client{Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		srv.Fail("sendMessage", telegramtest.Failure{Hang: true})
		start := time.Now()
		if _, err := bot.Send(tgbotapi.NewMessage(chatID, "x")); err == nil {
			t.Fatal("hanging send succeeded")
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("send returned after %v", elapsed)
		}
		if err := srv.WaitBlocked(timeout(t, 2*time.Second), "sendMessage", 0); err != nil {
			t.Errorf("server side still hanging: %v", err)
		}
		if len(srv.Messages()) != 0 {
			t.Error("hung send was recorded")
		}
		if _, err := bot.Send(tgbotapi.NewMessage(chatID, "x")); err != nil {
			t.Errorf("send after the hang: %v", err)
		}
	})
	t.Run("request context", func(t *testing.T) {
		t.Parallel()
		srv := telegramtest.NewServer(token)
		defer srv.Close()
		srv.Fail("", telegramtest.Failure{Hang: true})
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/bot"+token+"/getMe", nil)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		if err := srv.WaitBlocked(timeout(t, 2*time.Second), "getMe", 1); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("client error = %v, want context.Canceled", err)
		}
		if err := srv.WaitBlocked(timeout(t, 2*time.Second), "getMe", 0); err != nil {
			t.Errorf("server side still hanging: %v", err)
		}
	})
}

func TestLatency(t *testing.T) {
	srv := telegramtest.NewServer(token)
	defer srv.Close()
	bot, err := tgbotapi.NewBotAPIWithClient(token, srv.Endpoint(), &http.Client{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLatency("sendMessage", time.Second)
	// The client gives up before the answer, but the message was sent.
	if _, err := bot.Send(tgbotapi.NewMessage(chatID, "slow")); err == nil {
		t.Fatal("send answered before the latency")
	}
	if got := srv.Messages(); len(got) != 1 || got[0].Text != "slow" {
		t.Errorf("messages %+v, want the one sent", got)
	}
	// Other methods are not delayed, and 0 removes the delay.
	if _, err := bot.GetMe(); err != nil {
		t.Errorf("getMe: %v", err)
	}
	srv.SetLatency("sendMessage", 0)
	if _, err := bot.Send(tgbotapi.NewMessage(chatID, "fast")); err != nil {
		t.Errorf("send without latency: %v", err)
	}
}

func TestCloseDoesNotHang(t *testing.T) {
	srv, bot := newBot(t)
	srv.Fail("sendMessage", telegramtest.Failure{Hang: true})
	errc := make(chan error, 2)
	go func() {
		_, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 30})
		errc <- err
	}()
	go func() {
		_, err := bot.Send(tgbotapi.NewMessage(chatID, "x"))
		errc <- err
	}()
	ctx := timeout(t, 2*time.Second)
	if err := srv.WaitBlocked(ctx, "getUpdates", 1); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitBlocked(ctx, "sendMessage", 1); err != nil {
		t.Fatal(err)
	}

	closed := make(chan struct{})
	go func() {
		srv.Close()
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close hung with a waiting long poll")
	}
	for i := 0; i < 2; i++ {
		if err := <-errc; err == nil {
			t.Error("a request cut off by Close succeeded")
		}
	}
	if _, err := srv.WaitMessage(context.Background(), nil); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("WaitMessage on a closed server = %v, want http.ErrServerClosed", err)
	}
}

func TestCommands(t *testing.T) {
	srv, bot := newBot(t)
	cmds := []tgbotapi.BotCommand{{Command: "status", Description: "Show open ports"}, {Command: "mute", Description: "Mute alerts"}}
	if _, err := bot.Request(tgbotapi.NewSetMyCommands(cmds...)); err != nil {
		t.Fatalf("setMyCommands: %v", err)
	}
	admin := tgbotapi.NewSetMyCommandsWithScope(tgbotapi.NewBotCommandScopeChat(chatID), tgbotapi.BotCommand{Command: "admin", Description: "Admin"})
	if _, err := bot.Request(admin); err != nil {
		t.Fatalf("setMyCommands with scope: %v", err)
	}
	want := []telegramtest.Command{{Command: "status", Description: "Show open ports"}, {Command: "mute", Description: "Mute alerts"}}
	if got := srv.Commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("Commands() = %+v, want %+v", got, want)
	}
	got, err := bot.GetMyCommands()
	if err != nil || !reflect.DeepEqual(got, cmds) {
		t.Errorf("GetMyCommands = %+v, %v; want %+v", got, err, cmds)
	}
	scoped, err := bot.GetMyCommandsWithConfig(tgbotapi.NewGetMyCommandsWithScope(tgbotapi.NewBotCommandScopeChat(chatID)))
	if err != nil || len(scoped) != 1 || scoped[0].Command != "admin" {
		t.Errorf("scoped GetMyCommands = %+v, %v", scoped, err)
	}

	for _, bad := range []tgbotapi.BotCommand{{Command: "/status", Description: "x"}, {Command: "Status", Description: "x"}, {Command: "status", Description: ""}} {
		_, err := bot.Request(tgbotapi.NewSetMyCommands(bad))
		if e := apiError(t, err); e.Code != 400 || !strings.HasPrefix(e.Message, "Bad Request: BOT_COMMAND") {
			t.Errorf("command %+v: %d %q, want 400 BOT_COMMAND_...", bad, e.Code, e.Message)
		}
	}
	if got := srv.Commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("rejected lists replaced the commands: %+v", got)
	}
}

func TestChats(t *testing.T) {
	srv, bot := newBot(t)
	tests := []struct {
		id       int64
		wantType string
	}{
		{chatID, "private"},
		{-4242, "group"},
		{-1001234567890, "supergroup"},
	}
	for _, tt := range tests {
		chat, err := bot.GetChat(tgbotapi.ChatInfoConfig{ChatConfig: tgbotapi.ChatConfig{ChatID: tt.id}})
		if err != nil || chat.ID != tt.id || chat.Type != tt.wantType {
			t.Errorf("GetChat(%d) = %+v, %v; want type %s", tt.id, chat, err, tt.wantType)
		}
	}

	srv.SetChatUnreachable(chatID, true)
	requests := map[string]tgbotapi.Chattable{
		"getChat":        tgbotapi.ChatInfoConfig{ChatConfig: tgbotapi.ChatConfig{ChatID: chatID}},
		"sendMessage":    tgbotapi.NewMessage(chatID, "x"),
		"sendChatAction": tgbotapi.NewChatAction(chatID, tgbotapi.ChatTyping),
	}
	for name, c := range requests {
		_, err := bot.Request(c)
		if e := apiError(t, err); e.Code != 400 || e.Message != "Bad Request: chat not found" {
			t.Errorf("%s to an unreachable chat: %d %q", name, e.Code, e.Message)
		}
	}
	srv.SetChatUnreachable(chatID, false)
	if _, err := bot.Request(tgbotapi.NewChatAction(chatID, tgbotapi.ChatTyping)); err != nil {
		t.Errorf("sendChatAction after the chat is reachable again: %v", err)
	}

	const group, supergroup = int64(-4242), int64(-1004242)
	srv.SetChatMigrated(group, supergroup)
	_, err := bot.Send(tgbotapi.NewMessage(group, "x"))
	if e := apiError(t, err); e.Code != 400 || e.Message != "Bad Request: group chat was upgraded to a supergroup chat" || e.MigrateToChatID != supergroup {
		t.Errorf("sendMessage to a migrated group: %d %q, migrate to %d", e.Code, e.Message, e.MigrateToChatID)
	}
	if _, err := bot.Send(tgbotapi.NewMessage(supergroup, "x")); err != nil {
		t.Errorf("sendMessage to the supergroup: %v", err)
	}
	srv.SetChatMigrated(group, 0)
	if _, err := bot.Send(tgbotapi.NewMessage(group, "x")); err != nil {
		t.Errorf("sendMessage after the migration is ended: %v", err)
	}
}

func TestTokenOnlyInPath(t *testing.T) {
	srv, bot := newBot(t)
	sent, err := bot.Send(alert(chatID, "door open"))
	if err != nil {
		t.Fatal(err)
	}
	qid := srv.PressButton(chatID, userID, sent.MessageID, "ack:1")
	if _, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := bot.Request(tgbotapi.NewCallback(qid, "ok")); err != nil {
		t.Fatal(err)
	}
	for _, r := range srv.Requests() {
		if r.Contains(token) {
			t.Errorf("%s request leaks the token: %+v", r.Method, r)
		}
	}

	// The check must see through form encoding, which escapes the ':'.
	if _, err := bot.Send(tgbotapi.NewMessage(chatID, "my token is "+token)); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if last := reqs[len(reqs)-1]; !last.Contains(token) || bytes.Contains(last.Body, []byte(token)) {
		t.Errorf("Contains misses a form-encoded token: %q", last.Body)
	}
}

func TestWait(t *testing.T) {
	srv, bot := newBot(t)
	go func() {
		for _, text := range []string{"first", "second"} {
			if _, err := bot.Send(tgbotapi.NewMessage(chatID, text)); err != nil {
				t.Errorf("Send: %v", err)
			}
		}
		if _, err := bot.Request(tgbotapi.NewEditMessageText(chatID, 2, "second, edited")); err != nil {
			t.Errorf("edit: %v", err)
		}
	}()
	m, err := srv.WaitMessage(timeout(t, 2*time.Second), func(m telegramtest.Message) bool { return m.Text == "second" })
	if err != nil || m.MessageID != 2 {
		t.Fatalf("WaitMessage = %+v, %v", m, err)
	}
	e, err := srv.WaitEdit(timeout(t, 2*time.Second), func(e telegramtest.Edit) bool { return e.MessageID == 2 })
	if err != nil || e.Text != "second, edited" {
		t.Fatalf("WaitEdit = %+v, %v", e, err)
	}
	// Past entries count, so a wait that starts late still succeeds.
	if m, err := srv.WaitMessage(timeout(t, time.Second), nil); err != nil || m.Text != "first" {
		t.Errorf("WaitMessage(nil) = %+v, %v; want the first message", m, err)
	}

	_, err = srv.WaitMessage(timeout(t, 50*time.Millisecond), func(m telegramtest.Message) bool { return m.Text == "never" })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitMessage without a match = %v, want context.DeadlineExceeded", err)
	}
	_, err = srv.WaitCallbackAnswer(timeout(t, 50*time.Millisecond), "1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitCallbackAnswer without an answer = %v, want context.DeadlineExceeded", err)
	}
}

func TestOtherEncodings(t *testing.T) {
	srv, _ := newBot(t)
	base := srv.URL + "/bot" + token + "/"
	markup := `{"inline_keyboard":[[{"text":"Ack","callback_data":"ack:9"}]]}`

	var multi bytes.Buffer
	mw := multipart.NewWriter(&multi)
	for k, v := range map[string]string{"chat_id": "5", "text": "multipart", "reply_markup": markup} {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, method, path, contentType, body string
		wantText                              string // recorded message; "" for none
	}{
		{"GET with query", http.MethodGet, "getMe", "", "", ""},
		{"GET sendMessage", http.MethodGet, "sendMessage?" + url.Values{"chat_id": {"5"}, "text": {"query"}}.Encode(), "", "", "query"},
		{"JSON", http.MethodPost, "sendMessage", "application/json",
			`{"chat_id":5,"text":"json","parse_mode":"HTML","disable_web_page_preview":true,"reply_markup":` + markup + `}`, "json"},
		{"multipart", http.MethodPost, "sendMessage", mw.FormDataContentType(), multi.String(), "multipart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var env struct {
				OK     bool            `json:"ok"`
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal(body, &env); err != nil || !env.OK || resp.StatusCode != 200 {
				t.Fatalf("response %d %s", resp.StatusCode, body)
			}
			if tt.wantText == "" {
				return
			}
			msgs := srv.Messages()
			m := msgs[len(msgs)-1]
			if m.Text != tt.wantText || m.ChatID != 5 {
				t.Errorf("recorded %+v, want %q in chat 5", m, tt.wantText)
			}
			if tt.name == "JSON" && (m.ParseMode != "HTML" || !m.DisableWebPagePreview || len(m.Buttons) != 1 || m.Buttons[0][0].CallbackData != "ack:9") {
				t.Errorf("JSON parameters lost: %+v", m)
			}
		})
	}

	for path, want := range map[string]int{"/bot" + token: 404, "/getMe": 404, "/bot" + token + "/": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestSimpleMethods(t *testing.T) {
	srv, bot := newBot(t)
	srv.SendText(chatID, userID, "pending")
	tests := []struct {
		name string
		c    tgbotapi.Chattable
		want string
	}{
		{"sendChatAction", tgbotapi.NewChatAction(chatID, tgbotapi.ChatTyping), "true"},
		{"deleteWebhook", tgbotapi.DeleteWebhookConfig{}, "true"},
	}
	for _, tt := range tests {
		resp, err := bot.Request(tt.c)
		if err != nil || string(resp.Result) != tt.want {
			t.Errorf("%s = %s, %v; want %s", tt.name, resp.Result, err, tt.want)
		}
	}
	info, err := bot.GetWebhookInfo()
	if err != nil || info.URL != "" || info.PendingUpdateCount != 1 {
		t.Errorf("GetWebhookInfo = %+v, %v", info, err)
	}
	if _, err := bot.Request(tgbotapi.DeleteWebhookConfig{DropPendingUpdates: true}); err != nil {
		t.Fatal(err)
	}
	if updates, err := bot.GetUpdates(tgbotapi.UpdateConfig{}); err != nil || len(updates) != 0 {
		t.Errorf("updates after dropping them = %+v, %v", updates, err)
	}
}

func TestSilentAndTopicMessages(t *testing.T) {
	srv, bot := newBot(t)
	const group = int64(-1001234567890)
	quiet := tgbotapi.NewMessage(group, "closed again")
	quiet.DisableNotification = true
	if _, err := bot.Request(quiet); err != nil {
		t.Fatalf("silent sendMessage: %v", err)
	}
	// tgbotapi v5.5.1 predates forum topics; message_thread_id goes as a
	// plain parameter, as doorman sends it.
	params := tgbotapi.Params{"chat_id": "-1001234567890", "text": "a question", "message_thread_id": "42"}
	if _, err := bot.MakeRequest("sendMessage", params); err != nil {
		t.Fatalf("sendMessage to a topic: %v", err)
	}
	for _, bad := range []string{"0", "-3", "x"} {
		params["message_thread_id"] = bad
		if _, err := bot.MakeRequest("sendMessage", params); err == nil || !strings.Contains(err.Error(), "message thread not found") {
			t.Errorf("message_thread_id %q: err = %v, want message thread not found", bad, err)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	if !msgs[0].DisableNotification || msgs[0].ThreadID != 0 {
		t.Errorf("silent message recorded as %+v", msgs[0])
	}
	if msgs[1].DisableNotification || msgs[1].ThreadID != 42 {
		t.Errorf("topic message recorded as %+v", msgs[1])
	}
	if cur, ok := srv.Current(group, msgs[1].MessageID); !ok || cur.ThreadID != 42 {
		t.Errorf("Current = %+v, %v; want thread 42", cur, ok)
	}
}

func TestUserMessageInTopic(t *testing.T) {
	srv, bot := newBot(t)
	const group = int64(-1001234567890)
	srv.SendUserMessage(telegramtest.UserMessage{ChatID: group, From: userID, Text: "/start CODE", ThreadID: 7, LanguageCode: "de-DE"})
	srv.SendText(chatID, userID, "/start")
	updates, err := bot.GetUpdates(tgbotapi.UpdateConfig{})
	if err != nil || len(updates) != 2 {
		t.Fatalf("GetUpdates = %d updates, %v", len(updates), err)
	}
	var raw struct {
		Result []struct {
			Message struct {
				MessageThreadID int  `json:"message_thread_id"`
				IsTopicMessage  bool `json:"is_topic_message"`
				Chat            struct {
					IsForum bool `json:"is_forum"`
				} `json:"chat"`
				From struct {
					LanguageCode string `json:"language_code"`
				} `json:"from"`
			} `json:"message"`
		} `json:"result"`
	}
	resp, err := bot.MakeRequest("getUpdates", tgbotapi.Params{"offset": "0"})
	if err != nil {
		t.Fatalf("getUpdates: %v", err)
	}
	if err := json.Unmarshal(append([]byte(`{"result":`), append(resp.Result, '}')...), &raw); err != nil || len(raw.Result) != 2 {
		t.Fatalf("decoding updates: %v (%d)", err, len(raw.Result))
	}
	topic, plain := raw.Result[0].Message, raw.Result[1].Message
	if topic.MessageThreadID != 7 || !topic.IsTopicMessage || !topic.Chat.IsForum || topic.From.LanguageCode != "de-DE" {
		t.Errorf("topic message = %+v", topic)
	}
	if plain.MessageThreadID != 0 || plain.IsTopicMessage || plain.Chat.IsForum || plain.From.LanguageCode != "en" {
		t.Errorf("plain message = %+v", plain)
	}
	if updates[0].Message.From.LanguageCode != "de-DE" {
		t.Errorf("tgbotapi sees language %q", updates[0].Message.From.LanguageCode)
	}
}

func TestCommandsPerLanguage(t *testing.T) {
	srv, bot := newBot(t)
	en := tgbotapi.NewSetMyCommands(tgbotapi.BotCommand{Command: "list", Description: "current port shares"})
	de := tgbotapi.NewSetMyCommands(tgbotapi.BotCommand{Command: "list", Description: "aktuelle Portfreigaben"})
	de.LanguageCode = "de"
	for _, c := range []tgbotapi.SetMyCommandsConfig{en, de} {
		if _, err := bot.Request(c); err != nil {
			t.Fatalf("setMyCommands: %v", err)
		}
	}
	if got := srv.CommandsFor("de"); len(got) != 1 || got[0].Description != "aktuelle Portfreigaben" {
		t.Errorf("CommandsFor(de) = %+v", got)
	}
	if got := srv.CommandsFor(""); len(got) != 1 || got[0].Description != "current port shares" {
		t.Errorf("CommandsFor(\"\") = %+v", got)
	}
	if got := srv.CommandsFor("fr"); got != nil {
		t.Errorf("CommandsFor(fr) = %+v, want none", got)
	}
}
