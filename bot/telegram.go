package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
)

const (
	defaultBaseURL        = "https://api.telegram.org"
	defaultRequestTimeout = 10 * time.Second
	// maxResponseBody bounds what one answer may make us read: the largest
	// legitimate one, a full getUpdates batch, is far below it, while a
	// misconfigured base URL may point at anything.
	maxResponseBody = 10 << 20
	// redactedToken replaces the token wherever it could surface.
	redactedToken = "<token>"
)

// TelegramConfig configures TelegramAPI.
type TelegramConfig struct {
	// Token is the bot token from @BotFather.
	Token string
	// BaseURL is where the Bot API lives, "https://api.telegram.org" by
	// default; set it to use a self-hosted Bot API server or a reverse
	// proxy. A trailing slash is tolerated.
	BaseURL string
	// RequestTimeout bounds every call, 10s by default; a long poll gets its
	// server-side timeout on top.
	RequestTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// TelegramAPI is API over the Telegram Bot API, using
// github.com/go-telegram-bot-api/telegram-bot-api/v5 for the wire format.
// It is safe for concurrent use.
type TelegramAPI struct {
	token    string
	endpoint string // format string for tgbotapi: base + "/bot%s/%s"
	client   *http.Client
	timeout  time.Duration
	log      *slog.Logger
	// username is learnt from GetMe, so that "/cmd@other_bot" in a group is
	// not taken as a command for this bot.
	username atomic.Pointer[string]
}

var _ API = (*TelegramAPI)(nil)

// NewTelegramAPI checks cfg and returns a client. It does no network I/O,
// so a daemon can start while Telegram is unreachable; call GetMe to check
// the token.
func NewTelegramAPI(cfg TelegramConfig) (*TelegramAPI, error) {
	if cfg.Token == "" {
		return nil, errors.New("telegram: the bot token is empty")
	}
	// The token goes into the URL path unescaped (tgbotapi formats it in),
	// so anything beyond the characters real tokens use could produce a URL
	// that fails to parse, and that parse error would quote the token.
	if !tokenChars.MatchString(cfg.Token) {
		return nil, errors.New("telegram: the bot token has characters a token never has; expected the form 123456:ABC-def_ghi")
	}
	base := cfg.BaseURL
	if base == "" {
		base = defaultBaseURL
	}
	// Checked first: the messages below quote the base URL.
	if strings.Contains(base, cfg.Token) {
		return nil, errors.New("telegram: the Bot API base URL must not contain the bot token; it is added by itself")
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("telegram: unable to parse the Bot API base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("telegram: the Bot API base URL %q is not an absolute http or https URL", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("telegram: the Bot API base URL %q has a query or fragment; /bot<token>/<method> is appended to it", u.Redacted())
	}
	timeout := cfg.RequestTimeout
	if timeout <= 0 {
		timeout = defaultRequestTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// tgbotapi passes the endpoint to fmt.Sprintf, so a '%' in the base
	// (an escaped path) has to be doubled to survive.
	endpoint := strings.ReplaceAll(strings.TrimRight(base, "/"), "%", "%%") + "/bot%s/%s"
	return &TelegramAPI{
		token:    cfg.Token,
		endpoint: endpoint,
		client:   newHTTPClient(),
		timeout:  timeout,
		log:      logger,
	}, nil
}

var tokenChars = regexp.MustCompile(`^[A-Za-z0-9:_-]+$`)

func newHTTPClient() *http.Client {
	return &http.Client{
		// No Client.Timeout: each call carries a context deadline, which
		// long polls need to be longer than ordinary calls.
		Transport: &http.Transport{
			// Telegram is blocked in some networks; HTTPS_PROXY is the
			// usual way around.
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   10 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          4,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		// The Bot API never redirects. Following one would carry the token
		// in the path to wherever Location points, and would turn the POST
		// into a GET without parameters.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// GetMe implements API. It also remembers the bot's username, which tells
// commands addressed to other bots apart.
func (t *TelegramAPI) GetMe(ctx context.Context) (User, error) {
	var me tgbotapi.User
	err := t.call(ctx, "getMe", t.timeout, func(b *tgbotapi.BotAPI) error {
		resp, err := b.MakeRequest("getMe", nil)
		if err != nil {
			return err
		}
		return decodeResult(resp.Result, &me)
	})
	if err != nil {
		return User{}, err
	}
	if me.UserName != "" {
		name := me.UserName
		t.username.Store(&name)
	}
	return toUser(&me), nil
}

// GetUpdates implements API. The timeout is rounded up to whole seconds,
// the unit of the Bot API.
func (t *TelegramAPI) GetUpdates(ctx context.Context, offset int, timeout time.Duration) ([]Update, error) {
	secs := 0
	if timeout > 0 {
		secs = int((timeout + time.Second - 1) / time.Second)
	}
	cfg := tgbotapi.UpdateConfig{
		Offset:  offset,
		Timeout: secs,
		// Spares Telegram sending what doorman ignores anyway, such as
		// edits and membership changes.
		AllowedUpdates: []string{"message", "callback_query"},
	}
	var raw []json.RawMessage
	err := t.call(ctx, "getUpdates", time.Duration(secs)*time.Second+t.timeout, func(b *tgbotapi.BotAPI) error {
		resp, err := b.Request(cfg)
		if err != nil {
			return err
		}
		return decodeResult(resp.Result, &raw)
	})
	if err != nil {
		return nil, err
	}
	out := make([]Update, 0, len(raw))
	for _, r := range raw {
		out = append(out, t.convertUpdate(r))
	}
	return out, nil
}

// convertUpdate decodes one update on its own: tgbotapi decodes a whole
// batch in one go, so a single update it cannot read would fail every
// poll from then on and stall the bot at that offset.
func (t *TelegramAPI) convertUpdate(raw json.RawMessage) Update {
	var u tgbotapi.Update
	if err := json.Unmarshal(raw, &u); err != nil {
		var id struct {
			UpdateID int `json:"update_id"`
		}
		_ = json.Unmarshal(raw, &id)
		t.log.Warn("telegram: skipping an update that cannot be decoded",
			slog.Int("update_id", id.UpdateID), slog.String("err", err.Error()))
		return Update{ID: id.UpdateID}
	}
	out := Update{ID: u.UpdateID}
	switch {
	case u.CallbackQuery != nil:
		cq := u.CallbackQuery
		cb := &Callback{ID: cq.ID, From: toUser(cq.From), Data: cq.Data}
		// Without a message (inline mode) the press can still be answered,
		// just not tied to a chat.
		if cq.Message != nil {
			cb.MessageID = cq.Message.MessageID
			if cq.Message.Chat != nil {
				cb.ChatID = cq.Message.Chat.ID
			}
		}
		out.Callback = cb
	case u.Message != nil:
		out.Message = t.toMessage(u.Message)
		// tgbotapi v5.5.1 knows no forum topics.
		var topic struct {
			Message struct {
				ThreadID       int  `json:"message_thread_id"`
				IsTopicMessage bool `json:"is_topic_message"`
			} `json:"message"`
		}
		// A reply in a group without topics has a thread too; only a
		// topic's thread is one to write in.
		if json.Unmarshal(raw, &topic) == nil && topic.Message.IsTopicMessage && topic.Message.ThreadID > 0 {
			out.Message.ThreadID = topic.Message.ThreadID
		}
	}
	return out
}

func (t *TelegramAPI) toMessage(m *tgbotapi.Message) *Message {
	out := &Message{ID: m.MessageID, From: toUser(m.From), Text: m.Text}
	if m.Chat != nil {
		out.ChatID, out.ChatType = m.Chat.ID, m.Chat.Type
	}
	// tgbotapi slices Text by the entity's length without checking it, so a
	// malformed entity would panic in the poll loop.
	if m.IsCommand() && m.Entities[0].Length >= 1 && m.Entities[0].Length <= len(m.Text) {
		cmd, at, _ := strings.Cut(m.CommandWithAt(), "@")
		me := t.username.Load()
		if at == "" || me == nil || strings.EqualFold(at, *me) {
			out.Command = cmd
			out.Args = strings.TrimSpace(m.CommandArguments())
		}
	}
	return out
}

func toUser(u *tgbotapi.User) User {
	if u == nil {
		return User{}
	}
	return User{
		ID:           u.ID,
		Username:     u.UserName,
		Name:         strings.TrimSpace(u.FirstName + " " + u.LastName),
		IsBot:        u.IsBot,
		LanguageCode: u.LanguageCode,
	}
}

// SendMessage implements API. tgbotapi v5.5.1 predates forum topics, so
// the request is written as plain parameters, which carry
// message_thread_id too.
func (t *TelegramAPI) SendMessage(ctx context.Context, m Outgoing) (int, error) {
	params := tgbotapi.Params{}
	params.AddFirstValid("chat_id", m.ChatID)
	params["text"] = m.HTML
	params["parse_mode"] = tgbotapi.ModeHTML
	params.AddBool("disable_web_page_preview", true)
	params.AddBool("disable_notification", m.Silent)
	params.AddNonZero("message_thread_id", m.ThreadID)
	if markup := inlineKeyboard(m.Keyboard); markup != nil {
		if err := params.AddInterface("reply_markup", markup); err != nil {
			return 0, fmt.Errorf("telegram: unable to encode a keyboard: %w", err)
		}
	}
	var sent struct {
		MessageID int `json:"message_id"`
	}
	err := t.call(ctx, "sendMessage", t.timeout, func(b *tgbotapi.BotAPI) error {
		// Only the id is needed, and failing to decode the rest of a
		// message that was delivered would invite a duplicate.
		resp, err := b.MakeRequest("sendMessage", params)
		if err != nil {
			return err
		}
		return decodeResult(resp.Result, &sent)
	})
	if err != nil {
		return 0, err
	}
	return sent.MessageID, nil
}

// EditMessage implements API.
func (t *TelegramAPI) EditMessage(ctx context.Context, chatID int64, messageID int, html string, kb Keyboard) error {
	edit := tgbotapi.NewEditMessageText(chatID, messageID, html)
	edit.ParseMode = tgbotapi.ModeHTML
	edit.DisableWebPagePreview = true
	// Leaving reply_markup out is what removes an inline keyboard.
	edit.ReplyMarkup = inlineKeyboard(kb)
	return t.call(ctx, "editMessageText", t.timeout, func(b *tgbotapi.BotAPI) error {
		// b.Request, not b.Send: the result is True rather than a Message
		// for inline messages, and nothing in it is needed.
		_, err := b.Request(edit)
		return err
	})
}

// AnswerCallback implements API.
func (t *TelegramAPI) AnswerCallback(ctx context.Context, callbackID, text string) error {
	return t.call(ctx, "answerCallbackQuery", t.timeout, func(b *tgbotapi.BotAPI) error {
		_, err := b.Request(tgbotapi.NewCallback(callbackID, text))
		return err
	})
}

// SetCommands implements API.
func (t *TelegramAPI) SetCommands(ctx context.Context, lang string, cmds []Command) error {
	// Never nil: tgbotapi would send "null" instead of an empty list.
	list := make([]tgbotapi.BotCommand, 0, len(cmds))
	for _, c := range cmds {
		list = append(list, tgbotapi.BotCommand{Command: c.Name, Description: c.Description})
	}
	return t.call(ctx, "setMyCommands", t.timeout, func(b *tgbotapi.BotAPI) error {
		cfg := tgbotapi.NewSetMyCommands(list...)
		cfg.LanguageCode = lang
		_, err := b.Request(cfg)
		return err
	})
}

// Chat is a Telegram chat as getChat describes it.
type Chat struct {
	ID       int64
	Type     string // "private", "group", "supergroup", "channel"
	Title    string // of a group or channel
	Username string // without @, may be empty
	Name     string // first and last name, for a private chat
}

// GetChat asks Telegram about a chat the bot can write to. It fails with
// "chat not found" (400) for a chat the bot has not joined or an ID typed
// wrong, and 403 when the bot was blocked or removed. It is not part of API:
// only `doorman check` needs it, and fakes of API need not implement it.
func (t *TelegramAPI) GetChat(ctx context.Context, chatID int64) (Chat, error) {
	var c tgbotapi.Chat
	err := t.call(ctx, "getChat", t.timeout, func(b *tgbotapi.BotAPI) error {
		resp, err := b.Request(tgbotapi.ChatInfoConfig{ChatConfig: tgbotapi.ChatConfig{ChatID: chatID}})
		if err != nil {
			return err
		}
		return decodeResult(resp.Result, &c)
	})
	if err != nil {
		return Chat{}, err
	}
	return Chat{
		ID:       c.ID,
		Type:     c.Type,
		Title:    c.Title,
		Username: c.UserName,
		Name:     strings.TrimSpace(c.FirstName + " " + c.LastName),
	}, nil
}

func inlineKeyboard(kb Keyboard) *tgbotapi.InlineKeyboardMarkup {
	var rows [][]tgbotapi.InlineKeyboardButton
	for _, row := range kb {
		if len(row) == 0 {
			continue
		}
		r := make([]tgbotapi.InlineKeyboardButton, len(row))
		for i, b := range row {
			r[i] = tgbotapi.NewInlineKeyboardButtonData(b.Text, b.Data)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil
	}
	return &tgbotapi.InlineKeyboardMarkup{InlineKeyboard: rows}
}

// errBadResult marks a result that came with "ok": true but could not be
// decoded, which is distinct from a response that is not JSON at all.
var errBadResult = errors.New("unexpected result")

func decodeResult(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %w", errBadResult, err)
	}
	return nil
}

// call runs fn against a tgbotapi.BotAPI made for this call alone.
// tgbotapi builds requests without a context, so the context travels in
// the HTTP client instead, which also notes what the wire said so errors
// can be classified even when the body is not JSON.
func (t *TelegramAPI) call(ctx context.Context, method string, timeout time.Duration, fn func(*tgbotapi.BotAPI) error) error {
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &callClient{base: t.client, ctx: callCtx}
	b := &tgbotapi.BotAPI{Token: t.token, Client: hc, Buffer: 0}
	b.SetAPIEndpoint(t.endpoint)
	start := time.Now()
	err := fn(b)
	if err == nil {
		return nil
	}
	apiErr := t.classify(callCtx, ctx, method, timeout, hc, err)
	t.log.Debug("telegram call failed",
		slog.String("method", method),
		slog.Int("code", apiErr.Code),
		slog.Bool("retryable", apiErr.Retryable),
		slog.Duration("elapsed", time.Since(start)),
		slog.String("err", apiErr.Error()))
	return apiErr
}

// callClient is the tgbotapi.HTTPClient of one call.
type callClient struct {
	base *http.Client
	ctx  context.Context

	status      int
	contentType string
	// wireErr is a failure to get a complete answer: of Do or of reading
	// the body.
	wireErr  error
	tooLarge bool
}

func (c *callClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.base.Do(req.WithContext(c.ctx))
	if err != nil {
		c.wireErr = err
		return nil, err
	}
	c.status = resp.StatusCode
	c.contentType = resp.Header.Get("Content-Type")
	resp.Body = &limitedBody{rc: resp.Body, call: c}
	return resp, nil
}

var errTooLarge = fmt.Errorf("response body exceeds %d MiB", maxResponseBody>>20)

type limitedBody struct {
	rc   io.ReadCloser
	read int64
	call *callClient
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.read > maxResponseBody {
		return 0, errTooLarge
	}
	// One byte beyond the limit tells "exactly at the limit" from "over".
	if left := maxResponseBody + 1 - b.read; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.rc.Read(p)
	b.read += int64(n)
	if b.read > maxResponseBody {
		b.call.tooLarge = true
		return n, errTooLarge
	}
	if err != nil && err != io.EOF {
		b.call.wireErr = err
	}
	return n, err
}

func (b *limitedBody) Close() error {
	// tgbotapi stops reading after the JSON value; draining a little lets
	// the connection be reused.
	_, _ = io.CopyN(io.Discard, b.rc, 4<<10)
	return b.rc.Close()
}
