package bot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
)

// tgToken has the shape of a real token so that nothing treats it
// specially; tests search errors and logs for it.
const tgToken = "123456:AAH-secret_token_0123456789abcdefXYZ"

// tgLogBuffer collects log output from several goroutines.
type tgLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tgLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *tgLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tgLogger(level slog.Level) (*slog.Logger, *tgLogBuffer) {
	buf := &tgLogBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level})), buf
}

func newTGAPI(t *testing.T, baseURL string, timeout time.Duration) (*TelegramAPI, *tgLogBuffer) {
	t.Helper()
	logger, logs := tgLogger(slog.LevelDebug)
	api, err := NewTelegramAPI(TelegramConfig{Token: tgToken, BaseURL: baseURL, RequestTimeout: timeout, Logger: logger})
	if err != nil {
		t.Fatalf("NewTelegramAPI: %v", err)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), tgToken) {
			t.Errorf("the token leaked into the log:\n%s", logs)
		}
	})
	return api, logs
}

func newTGFake(t *testing.T) *telegramtest.Server {
	t.Helper()
	srv := telegramtest.NewServer(tgToken)
	t.Cleanup(func() {
		for _, r := range srv.Requests() {
			if r.Contains(tgToken) {
				t.Errorf("%s request carries the token outside the path", r.Method)
			}
		}
		srv.Close()
	})
	return srv
}

func tgCtxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustAPIError(t *testing.T, err error) *APIError {
	t.Helper()
	var e *APIError
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *APIError", err, err)
	}
	if strings.Contains(err.Error(), tgToken) {
		t.Errorf("error leaks the token: %v", err)
	}
	return e
}

func TestNewTelegramAPIValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     TelegramConfig
		wantErr string // substring; "" for success
		wantEP  string
	}{
		{"defaults", TelegramConfig{Token: tgToken}, "", "https://api.telegram.org/bot%s/%s"},
		{"trailing slash", TelegramConfig{Token: tgToken, BaseURL: "http://127.0.0.1:8081/"}, "", "http://127.0.0.1:8081/bot%s/%s"},
		{"path prefix", TelegramConfig{Token: tgToken, BaseURL: "https://proxy.example/telegram//"}, "", "https://proxy.example/telegram/bot%s/%s"},
		{"escaped path", TelegramConfig{Token: tgToken, BaseURL: "https://proxy.example/tg%20api"}, "", "https://proxy.example/tg%%20api/bot%s/%s"},
		{"empty token", TelegramConfig{}, "token is empty", ""},
		{"token with slash", TelegramConfig{Token: "123:abc/../x"}, "characters a token never has", ""},
		{"token with space", TelegramConfig{Token: "123:abc def"}, "characters a token never has", ""},
		{"token with percent", TelegramConfig{Token: "123:abc%41"}, "characters a token never has", ""},
		{"ftp", TelegramConfig{Token: tgToken, BaseURL: "ftp://api.telegram.org"}, "not an absolute http or https URL", ""},
		{"relative", TelegramConfig{Token: tgToken, BaseURL: "api.telegram.org"}, "not an absolute http or https URL", ""},
		{"no host", TelegramConfig{Token: tgToken, BaseURL: "https://"}, "not an absolute http or https URL", ""},
		{"unparsable", TelegramConfig{Token: tgToken, BaseURL: "http://[::1"}, "unable to parse", ""},
		{"query", TelegramConfig{Token: tgToken, BaseURL: "https://api.telegram.org/?x=1"}, "query or fragment", ""},
		{"token in base", TelegramConfig{Token: tgToken, BaseURL: "https://api.telegram.org/bot" + tgToken}, "must not contain the bot token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, err := NewTelegramAPI(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if tt.cfg.Token != "" && strings.Contains(err.Error(), tt.cfg.Token) {
					t.Errorf("error quotes the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if api.endpoint != tt.wantEP {
				t.Errorf("endpoint = %q, want %q", api.endpoint, tt.wantEP)
			}
			if api.timeout != defaultRequestTimeout {
				t.Errorf("timeout = %v, want the default", api.timeout)
			}
			tr, ok := api.client.Transport.(*http.Transport)
			if !ok || tr.Proxy == nil {
				t.Errorf("transport %T does not honour proxy settings", api.client.Transport)
			}
			if api.client == http.DefaultClient {
				t.Error("uses http.DefaultClient")
			}
		})
	}
}

func TestNewTelegramAPIDoesNoIO(t *testing.T) {
	srv := newTGFake(t)
	if _, err := NewTelegramAPI(TelegramConfig{Token: tgToken, BaseURL: srv.URL}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("construction made %d requests, want none", n)
	}
}

func TestBaseURLWithEscapedPath(t *testing.T) {
	var got string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath()
		io.WriteString(w, `{"ok":true,"result":{"id":1,"is_bot":true,"first_name":"Proxied","username":"proxied_bot"}}`)
	}))
	defer ts.Close()
	api, _ := newTGAPI(t, ts.URL+"/tg%20api/", time.Second)
	me, err := api.GetMe(tgCtxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if want := "/tg%20api/bot" + tgToken + "/getMe"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	if me != (User{ID: 1, Username: "proxied_bot", Name: "Proxied", IsBot: true}) {
		t.Errorf("GetMe = %+v", me)
	}
}

func TestTelegramAPIMethods(t *testing.T) {
	srv := newTGFake(t)
	api, _ := newTGAPI(t, srv.URL, 5*time.Second)
	ctx := tgCtxTimeout(t, 10*time.Second)
	const chat = 42

	me, err := api.GetMe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (User{ID: srv.BotID(), Username: srv.BotUsername(), Name: "Telegramtest", IsBot: true}); me != want {
		t.Errorf("GetMe = %+v, want %+v", me, want)
	}

	kb := Keyboard{{{Text: "Allow", Data: "allow:1"}, {Text: "Block", Data: "block:1"}}, {}}
	id, err := api.SendMessage(ctx, Outgoing{ChatID: chat, HTML: "<b>new mapping</b> tcp/22 &lt;ssh&gt; https://example.org", Keyboard: kb})
	if err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("messages = %+v", msgs)
	}
	m := msgs[0]
	if m.MessageID != id || m.ChatID != chat || m.ParseMode != "HTML" || !m.DisableWebPagePreview {
		t.Errorf("sent %+v, id %d", m, id)
	}
	wantButtons := [][]telegramtest.Button{{{Text: "Allow", CallbackData: "allow:1"}, {Text: "Block", CallbackData: "block:1"}}}
	if !tgEqualButtons(m.Buttons, wantButtons) {
		t.Errorf("buttons = %+v, want %+v", m.Buttons, wantButtons)
	}

	plain, err := api.SendMessage(ctx, Outgoing{ChatID: chat, HTML: "no buttons"})
	if err != nil {
		t.Fatal(err)
	}
	if plain == id {
		t.Errorf("second message has the same id %d", id)
	}
	if got := srv.Messages()[1].Buttons; got != nil {
		t.Errorf("message without keyboard got buttons %+v", got)
	}

	if err := api.EditMessage(ctx, chat, id, "<b>allowed</b>", Keyboard{{{Text: "Undo", Data: "undo:1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := api.EditMessage(ctx, chat, id, "<b>allowed</b>", nil); err != nil {
		t.Fatal(err)
	}
	edits := srv.Edits()
	if len(edits) != 2 || edits[0].Buttons == nil || edits[1].Buttons != nil || edits[1].ParseMode != "HTML" {
		t.Errorf("edits = %+v, want a new keyboard, then none", edits)
	}
	if cur, ok := srv.Current(chat, id); !ok || cur.Buttons != nil || cur.Text != "<b>allowed</b>" || !cur.DisableWebPagePreview {
		t.Errorf("current = %+v, %v", cur, ok)
	}

	err = api.EditMessage(ctx, chat, id, "<b>allowed</b>", nil)
	if e := mustAPIError(t, err); !IsNotModified(err) || IsMessageGone(err) || e.Retryable || e.Method != "editMessageText" {
		t.Errorf("repeated edit: %#v", e)
	}
	err = api.EditMessage(ctx, chat, 999, "x", nil)
	if mustAPIError(t, err); !IsMessageGone(err) || IsNotModified(err) {
		t.Errorf("edit of a missing message: %v", err)
	}

	srv.SetChatUnreachable(7, true)
	_, err = api.SendMessage(ctx, Outgoing{ChatID: 7, HTML: "hello"})
	if e := mustAPIError(t, err); e.Code != 400 || e.Retryable {
		t.Errorf("unreachable chat: %#v", e)
	}
	if want := "telegram: unable to sendMessage: Bad Request: chat not found (400)"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}

	qid := srv.PressButton(chat, 1001, id, "allow:1")
	if err := api.AnswerCallback(ctx, qid, "Allowed"); err != nil {
		t.Fatal(err)
	}
	if got := srv.CallbackAnswers(); len(got) != 1 || got[0] != (telegramtest.CallbackAnswer{ID: qid, Text: "Allowed"}) {
		t.Errorf("answers = %+v", got)
	}
	err = api.AnswerCallback(ctx, qid, "again")
	if e := mustAPIError(t, err); e.Code != 400 || e.Retryable {
		t.Errorf("second answer: %#v", e)
	}

	cmds := []Command{{Name: "list", Description: "List mappings"}, {Name: "status", Description: "Show status"}}
	if err := api.SetCommands(ctx, "", cmds); err != nil {
		t.Fatal(err)
	}
	want := []telegramtest.Command{{Command: "list", Description: "List mappings"}, {Command: "status", Description: "Show status"}}
	if got := srv.Commands(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("commands = %+v", got)
	}
	if err := api.SetCommands(ctx, "", nil); err != nil {
		t.Fatalf("clearing the commands: %v", err)
	}
	if got := srv.Commands(); len(got) != 0 {
		t.Errorf("commands after clearing = %+v", got)
	}

	for _, r := range srv.Requests() {
		if !r.Authorized {
			t.Errorf("%s request not authorized", r.Method)
		}
	}
}

func tgEqualButtons(a, b [][]telegramtest.Button) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				return false
			}
		}
	}
	return true
}

func TestGetUpdatesConversion(t *testing.T) {
	srv := newTGFake(t)
	api, _ := newTGAPI(t, srv.URL, 5*time.Second)
	ctx := tgCtxTimeout(t, 10*time.Second)
	const chat, group, user = 42, -4001, 1001

	id, err := api.SendMessage(ctx, Outgoing{ChatID: chat, HTML: "alert", Keyboard: Keyboard{{{Text: "Allow", Data: "allow:7"}}}})
	if err != nil {
		t.Fatal(err)
	}
	qid := srv.PressButton(chat, user, id, "allow:7")
	srv.SendText(chat, user, "/list@"+srv.BotUsername()+" now ")
	srv.SendText(group, user, "/status")
	srv.SendText(chat, user, "just text")
	srv.SendText(chat, user, "/list@other_bot x")

	updates, err := api.GetUpdates(ctx, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(updates) != 5 {
		t.Fatalf("got %d updates, want 5: %+v", len(updates), updates)
	}
	for i := 1; i < len(updates); i++ {
		if updates[i].ID != updates[i-1].ID+1 {
			t.Errorf("update ids %d then %d", updates[i-1].ID, updates[i].ID)
		}
	}
	from := User{ID: user, Username: "user1001", Name: "User", LanguageCode: "en"}
	cb := updates[0].Callback
	if updates[0].Message != nil || cb == nil {
		t.Fatalf("first update = %+v, want a callback", updates[0])
	}
	if want := (Callback{ID: qid, From: from, ChatID: chat, MessageID: id, Data: "allow:7"}); *cb != want {
		t.Errorf("callback = %+v, want %+v", *cb, want)
	}

	msgTests := []struct {
		chatID   int64
		chatType string
		text     string
		command  string
		args     string
	}{
		{chat, "private", "/list@" + srv.BotUsername() + " now ", "list", "now"},
		{group, "group", "/status", "status", ""},
		{chat, "private", "just text", "", ""},
		// Without GetMe the bot's own name is unknown, so any @name passes.
		{chat, "private", "/list@other_bot x", "list", "x"},
	}
	for i, tt := range msgTests {
		u := updates[i+1]
		m := u.Message
		if m == nil || u.Callback != nil {
			t.Errorf("update %d = %+v, want a message", i+1, u)
			continue
		}
		if m.ChatID != tt.chatID || m.ChatType != tt.chatType || m.From != from || m.Text != tt.text ||
			m.Command != tt.command || m.Args != tt.args || m.ID == 0 {
			t.Errorf("message %d = %+v, want chat %d %s, text %q, command %q, args %q",
				i, *m, tt.chatID, tt.chatType, tt.text, tt.command, tt.args)
		}
	}

	// Once the bot knows its name, commands for other bots are just text.
	if _, err := api.GetMe(ctx); err != nil {
		t.Fatal(err)
	}
	last := updates[len(updates)-1].ID
	srv.SendText(group, user, "/list@other_bot x")
	srv.SendText(group, user, "/LIST@"+strings.ToUpper(srv.BotUsername())+" y")
	more, err := api.GetUpdates(ctx, last+1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(more) != 2 || more[0].Message == nil || more[1].Message == nil {
		t.Fatalf("updates = %+v", more)
	}
	if m := more[0].Message; m.Command != "" || m.Args != "" || m.Text != "/list@other_bot x" {
		t.Errorf("command for another bot = %+v", m)
	}
	if m := more[1].Message; m.Command != "LIST" || m.Args != "y" {
		t.Errorf("command for this bot in capitals = %+v", m)
	}

	// The offset confirms what came before; the timeout is a real wait.
	start := time.Now()
	rest, err := api.GetUpdates(ctx, more[1].ID+1, time.Second)
	if err != nil || len(rest) != 0 {
		t.Errorf("after confirming all: %+v, %v", rest, err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("empty long poll returned after %v, want about 1s", d)
	}
	var sawAllowed bool
	for _, r := range srv.Requests() {
		if r.Method == "getUpdates" {
			sawAllowed = r.Form.Get("allowed_updates") == `["message","callback_query"]`
		}
	}
	if !sawAllowed {
		t.Error("getUpdates does not restrict allowed_updates")
	}
}

func TestConvertOddUpdates(t *testing.T) {
	body := `{"ok":true,"result":[
		{"update_id":10,"message":{"message_id":"not a number"}},
		{"update_id":11,"edited_message":{"message_id":3,"date":1,"chat":{"id":5,"type":"private"},"text":"x"}},
		{"update_id":12,"callback_query":{"id":"q","from":{"id":9,"first_name":"Ann","last_name":"Lee "},"inline_message_id":"abc","data":"d"}},
		{"update_id":13,"message":{"message_id":4,"date":1,"chat":{"id":5,"type":"private"},"text":"/x","entities":[{"type":"bot_command","offset":0,"length":40}]}},
		{"update_id":14,"channel_post":{"message_id":5,"date":1,"chat":{"id":-1001,"type":"channel"},"text":"/x"}}
	]}`
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer ts.Close()
	api, logs := newTGAPI(t, ts.URL, time.Second)
	updates, err := api.GetUpdates(tgCtx(t), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Update{
		{ID: 10},
		{ID: 11},
		{ID: 12, Callback: &Callback{ID: "q", From: User{ID: 9, Name: "Ann Lee"}, Data: "d"}},
		// A bot_command entity longer than the text must not panic.
		{ID: 13, Message: &Message{ID: 4, ChatID: 5, ChatType: "private", Text: "/x"}},
		{ID: 14},
	}
	if len(updates) != len(want) {
		t.Fatalf("updates = %+v", updates)
	}
	for i, w := range want {
		g := updates[i]
		if g.ID != w.ID || (g.Callback == nil) != (w.Callback == nil) || (g.Message == nil) != (w.Message == nil) ||
			(g.Callback != nil && *g.Callback != *w.Callback) || (g.Message != nil && *g.Message != *w.Message) {
			t.Errorf("update %d = %+v %+v %+v, want %+v %+v %+v", i, g, g.Callback, g.Message, w, w.Callback, w.Message)
		}
	}
	if !strings.Contains(logs.String(), "update_id=10") {
		t.Errorf("the undecodable update was not logged:\n%s", logs)
	}
}

// tgCtx bounds a test that has nothing better to wait for.
func tgCtx(t *testing.T) context.Context { return tgCtxTimeout(t, 10*time.Second) }

func TestToUser(t *testing.T) {
	tests := []struct {
		name  string
		first string
		last  string
		want  string
	}{
		{"both", "Ann", "Lee", "Ann Lee"},
		{"first only", "Ann", "", "Ann"},
		{"last only", "", "Lee", "Lee"},
		{"spaces", " Ann ", " ", "Ann"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := toUser(&tgbotapi.User{ID: 1, FirstName: tt.first, LastName: tt.last, UserName: "ann"})
			if u.Name != tt.want || u.Username != "ann" || u.ID != 1 {
				t.Errorf("toUser = %+v, want name %q", u, tt.want)
			}
		})
	}
	if u := toUser(nil); u != (User{}) {
		t.Errorf("toUser(nil) = %+v", u)
	}
}

// tgRawServer answers every request with status, content type and body.
func tgRawServer(t *testing.T, status int, contentType, body string) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestErrorClassification(t *testing.T) {
	const jsonCT, htmlCT = "application/json", "text/html"
	nginx502 := "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
	tests := []struct {
		name       string
		status     int
		ct, body   string
		code       int
		retryable  bool
		retryAfter time.Duration
		is         func(error) bool // must hold; nil for none
		msg        string           // substring of Error()
	}{
		{"flood", 429, jsonCT, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}`,
			429, true, 7 * time.Second, nil, "Too Many Requests: retry after 7 (429)"},
		{"flood, terse description", 429, jsonCT, `{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":5}}`,
			429, true, 5 * time.Second, nil, "Too Many Requests (429)"},
		{"flood without parameters", 429, jsonCT, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3"}`,
			429, true, 3 * time.Second, nil, "retry after 3"},
		{"chat not found", 400, jsonCT, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`,
			400, false, 0, nil, "telegram: unable to sendMessage: Bad Request: chat not found (400)"},
		{"not modified", 400, jsonCT, `{"ok":false,"error_code":400,"description":"Bad Request: message is not modified: specified new message content and reply markup are exactly the same"}`,
			400, false, 0, IsNotModified, "message is not modified"},
		{"edit target gone", 400, jsonCT, `{"ok":false,"error_code":400,"description":"Bad Request: message to edit not found"}`,
			400, false, 0, IsMessageGone, "message to edit not found"},
		{"too old to edit", 400, jsonCT, `{"ok":false,"error_code":400,"description":"Bad Request: message can't be edited"}`,
			400, false, 0, IsMessageGone, "can't be edited"},
		{"migrated", 400, jsonCT, `{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234}}`,
			400, false, 0, nil, "the chat is now -1001234"},
		{"revoked token", 401, jsonCT, `{"ok":false,"error_code":401,"description":"Unauthorized"}`,
			401, false, 0, IsUnauthorized, "Unauthorized (401)"},
		{"blocked", 403, jsonCT, `{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}`,
			403, false, 0, IsForbidden, "bot was blocked by the user (403)"},
		{"wrong method or path", 404, jsonCT, `{"ok":false,"error_code":404,"description":"Not Found"}`,
			404, false, 0, nil, "Not Found (404)"},
		{"wrong base URL", 404, htmlCT, "<html><body>404 page not found</body></html>",
			404, false, 0, nil, "HTTP 404 Not Found, not a Bot API answer (text/html)"},
		{"conflict", 409, jsonCT, `{"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}`,
			409, true, 0, nil, "Conflict"},
		{"server error", 500, jsonCT, `{"ok":false,"error_code":500,"description":"Internal Server Error"}`,
			500, true, 0, nil, "Internal Server Error (500)"},
		{"proxy page", 502, htmlCT, nginx502,
			502, true, 0, nil, "HTTP 502 Bad Gateway, not a Bot API answer (text/html)"},
		{"not JSON", 200, "text/plain", "hello",
			200, false, 0, nil, "not a Bot API answer"},
		{"empty 503", 503, "", "",
			503, true, 0, nil, "HTTP 503"},
		{"code only in status", 500, jsonCT, `{"ok":false,"description":"oops"}`,
			500, true, 0, nil, "oops (500)"},
		{"unexpected result", 200, jsonCT, `{"ok":true,"result":true}`,
			200, false, 0, nil, "unexpected result"},
		{"token echoed", 404, jsonCT, `{"ok":false,"error_code":404,"description":"Not Found: /bot` + tgToken + `/sendMessage"}`,
			404, false, 0, nil, "/bot<token>/sendMessage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, logs := newTGAPI(t, tgRawServer(t, tt.status, tt.ct, tt.body), time.Second)
			_, err := api.SendMessage(tgCtx(t), Outgoing{ChatID: 42, HTML: "hi"})
			e := mustAPIError(t, err)
			if e.Method != "sendMessage" || e.Code != tt.code || e.Retryable != tt.retryable || e.RetryAfter != tt.retryAfter {
				t.Errorf("error = %#v, want code %d, retryable %v, retry after %v", e, tt.code, tt.retryable, tt.retryAfter)
			}
			if IsRetryable(err) != tt.retryable || RetryAfterOf(err) != tt.retryAfter {
				t.Errorf("IsRetryable = %v, RetryAfterOf = %v", IsRetryable(err), RetryAfterOf(err))
			}
			if tt.is != nil && !tt.is(err) {
				t.Errorf("predicate does not hold for %v", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Error() = %q, want it to contain %q", err, tt.msg)
			}
			if !strings.Contains(logs.String(), "method=sendMessage") {
				t.Errorf("failure not logged:\n%s", logs)
			}
		})
	}
}

func TestPredicatesOnOtherErrors(t *testing.T) {
	wrapped := errors.Join(errors.New("outbox"), &APIError{Method: "sendMessage", Code: 403, Description: "Forbidden: bot was kicked from the group chat"})
	if !IsForbidden(wrapped) || IsUnauthorized(wrapped) || IsRetryable(wrapped) || IsNotModified(wrapped) {
		t.Error("predicates do not see through wrapping")
	}
	plain := errors.New("boom")
	if IsRetryable(plain) || RetryAfterOf(plain) != 0 || IsNotModified(plain) || IsMessageGone(plain) || IsUnauthorized(plain) || IsForbidden(plain) {
		t.Error("predicates hold for a non-API error")
	}
	if IsRetryable(nil) || IsForbidden(nil) {
		t.Error("predicates hold for nil")
	}
	// Not modified is a 400; another code with those words is something else.
	if IsNotModified(&APIError{Code: 500, Description: "message is not modified"}) {
		t.Error("IsNotModified ignores the code")
	}
}

func TestTransportFailures(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		api, _ := newTGAPI(t, "http://"+addr, time.Second)
		_, err = api.GetMe(tgCtx(t))
		e := mustAPIError(t, err)
		if e.Code != 0 || !e.Retryable || e.Method != "getMe" {
			t.Errorf("error = %#v", e)
		}
		if strings.Contains(err.Error(), "/bot") {
			t.Errorf("error quotes the URL: %v", err)
		}
	})

	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })

	t.Run("timeout", func(t *testing.T) {
		api, _ := newTGAPI(t, hang.URL, 100*time.Millisecond)
		start := time.Now()
		_, err := api.SendMessage(tgCtx(t), Outgoing{ChatID: 1, HTML: "x"})
		e := mustAPIError(t, err)
		if !errors.Is(err, context.DeadlineExceeded) || !e.Retryable || e.Code != 0 {
			t.Errorf("error = %v (%#v), want a retryable deadline", err, e)
		}
		if !strings.Contains(err.Error(), "no answer within 100ms") {
			t.Errorf("Error() = %q", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("long poll gets its timeout on top", func(t *testing.T) {
		api, _ := newTGAPI(t, hang.URL, 100*time.Millisecond)
		start := time.Now()
		_, err := api.GetUpdates(tgCtx(t), 0, time.Second)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d < time.Second || d > 3*time.Second {
			t.Errorf("gave up after %v, want about 1.1s", d)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		api, _ := newTGAPI(t, hang.URL, 10*time.Second)
		c, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := api.GetUpdates(c, 0, 30*time.Second)
		e := mustAPIError(t, err)
		if !errors.Is(err, context.Canceled) || e.Retryable {
			t.Errorf("error = %v (%#v), want a cancellation that is not retryable", err, e)
		}
	})

	t.Run("cut off mid-body", func(t *testing.T) {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, `{"ok":true,"result":`)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}))
		defer ts.Close()
		api, _ := newTGAPI(t, ts.URL, time.Second)
		_, err := api.SendMessage(tgCtx(t), Outgoing{ChatID: 1, HTML: "x"})
		if e := mustAPIError(t, err); !e.Retryable || e.Code != 0 {
			t.Errorf("error = %#v, want a retryable transport error", e)
		}
	})

	t.Run("huge body", func(t *testing.T) {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"ok":true,"result":"`)
			chunk := strings.Repeat("a", 1<<20)
			for range 12 {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
			io.WriteString(w, `"}`)
		}))
		defer ts.Close()
		api, _ := newTGAPI(t, ts.URL, 5*time.Second)
		_, err := api.GetMe(tgCtx(t))
		e := mustAPIError(t, err)
		if !errors.Is(err, errTooLarge) || e.Retryable || e.Code != 200 {
			t.Errorf("error = %v (%#v)", err, e)
		}
	})

	t.Run("redirect not followed", func(t *testing.T) {
		var followed bool
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/elsewhere") {
				followed = true
				return
			}
			http.Redirect(w, r, "/elsewhere"+r.URL.Path, http.StatusFound)
		}))
		defer ts.Close()
		api, _ := newTGAPI(t, ts.URL, time.Second)
		_, err := api.GetMe(tgCtx(t))
		if e := mustAPIError(t, err); e.Code != 302 || e.Retryable {
			t.Errorf("error = %#v", e)
		}
		if followed {
			t.Error("the redirect was followed, carrying the token along")
		}
	})
}

// TestFakeFailures runs the failures telegramtest injects through the real
// client, and checks no kind of failure reveals the token.
func TestFakeFailures(t *testing.T) {
	tests := []struct {
		name       string
		f          telegramtest.Failure
		code       int
		retryable  bool
		retryAfter time.Duration
	}{
		{"flood", telegramtest.Failure{RetryAfter: 3}, 429, true, 3 * time.Second},
		{"proxy page", telegramtest.Failure{Status: 502}, 502, true, 0},
		{"gateway timeout page", telegramtest.Failure{Status: 504}, 504, true, 0},
		{"internal", telegramtest.Failure{}, 500, true, 0},
		{"revoked", telegramtest.Failure{Status: 401}, 401, false, 0},
		{"kicked", telegramtest.Failure{Status: 403}, 403, false, 0},
		{"hang", telegramtest.Failure{Hang: true}, 0, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTGFake(t)
			api, _ := newTGAPI(t, srv.URL, 200*time.Millisecond)
			srv.Fail("sendMessage", tt.f)
			_, err := api.SendMessage(tgCtx(t), Outgoing{ChatID: 42, HTML: "hi"})
			e := mustAPIError(t, err)
			if e.Code != tt.code || e.Retryable != tt.retryable || e.RetryAfter != tt.retryAfter {
				t.Errorf("error = %#v, want code %d, retryable %v, retry after %v", e, tt.code, tt.retryable, tt.retryAfter)
			}
			if len(srv.Messages()) != 0 {
				t.Error("a failed send was delivered")
			}
			// The failure was used up; the next call goes through.
			if _, err := api.SendMessage(tgCtx(t), Outgoing{ChatID: 42, HTML: "hi"}); err != nil {
				t.Errorf("after the failure: %v", err)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := newTGFake(t)
	api, _ := newTGAPI(t, srv.URL, 5*time.Second)
	c := tgCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := api.GetUpdates(c, 0, 5*time.Second)
		done <- err
	}()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := api.SendMessage(c, Outgoing{ChatID: int64(100 + i), HTML: "hi"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	srv.SendText(1, 1, "wake up")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Messages()); n != 8 {
		t.Errorf("%d messages, want 8", n)
	}
}

// TestSilentTopicsAndLanguages: a silent message, one to a forum topic, the
// command menu per language, and the topic and language of who wrote.
func TestSilentTopicsAndLanguages(t *testing.T) {
	srv := newTGFake(t)
	api, _ := newTGAPI(t, srv.URL, 5*time.Second)
	ctx := tgCtx(t)
	const group = int64(-1001234567890)
	if _, err := api.SendMessage(ctx, Outgoing{ChatID: 42, HTML: "closed again", Silent: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.SendMessage(ctx, Outgoing{ChatID: group, ThreadID: 9, HTML: "a question", Keyboard: Keyboard{{{Text: "Allow", Data: "allow:1"}}}}); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || !msgs[0].DisableNotification || msgs[0].ThreadID != 0 ||
		msgs[1].DisableNotification || msgs[1].ThreadID != 9 || len(msgs[1].Buttons) != 1 || msgs[1].ParseMode != "HTML" || !msgs[1].DisableWebPagePreview {
		t.Errorf("sent %+v", msgs)
	}
	if err := api.SetCommands(ctx, "de", []Command{{Name: "list", Description: "aktuelle Portfreigaben"}}); err != nil {
		t.Fatal(err)
	}
	if got := srv.CommandsFor("de"); len(got) != 1 || got[0].Description != "aktuelle Portfreigaben" || len(srv.Commands()) != 0 {
		t.Errorf("German menu %+v, default menu %+v", got, srv.Commands())
	}
	srv.SendUserMessage(telegramtest.UserMessage{ChatID: group, From: 5, Text: "/start CODE", ThreadID: 9, LanguageCode: "de-AT"})
	srv.SendText(group, 5, "/start CODE")
	updates, err := api.GetUpdates(ctx, 0, 0)
	if err != nil || len(updates) != 2 {
		t.Fatalf("updates %+v, %v", updates, err)
	}
	if m := updates[0].Message; m.ThreadID != 9 || m.From.LanguageCode != "de-AT" || m.Command != "start" || m.Args != "CODE" {
		t.Errorf("message in a topic = %+v", m)
	}
	if m := updates[1].Message; m.ThreadID != 0 || m.From.LanguageCode != "en" {
		t.Errorf("message outside topics = %+v", m)
	}
}
