// Package telegramtest provides a fake Telegram Bot API server for tests, in
// the spirit of net/http/httptest.
//
// Telegram cannot be reached from CI, and even where it can, real chats make
// tests slow, flaky and impossible to drive: nobody presses the alert's button.
// The fake speaks the wire protocol that clients such as
// github.com/go-telegram-bot-api/telegram-bot-api/v5 actually send (form
// encoded POSTs to /bot<token>/<method>) and answers with the Bot API's JSON
// envelope, so the code under test runs unmodified against it. It keeps the
// rules that real Telegram enforces and that bite in production (message is
// not modified, malformed HTML, 64-byte callback data, one long poll at a
// time) so that such bugs surface in tests rather than in a user's chat.
//
// Deliberately left out, because an alerting daemon does not depend on
// them: media and file uploads, inline mode, webhooks (setWebhook is
// unknown; deleteWebhook and getWebhookInfo exist because clients call them
// before polling), allowed_updates filtering, message entities other than
// the bot_command of user commands, Markdown validation (text is passed
// through), flood limits unless injected with Fail, and callback queries
// expiring with time.
package telegramtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody bounds what a single request may upload; the real API rejects
// anything above 50 MB and we do not store files anyway.
const maxBody = 50 << 20

// Server is a running fake Bot API. All methods are safe for concurrent use,
// because the code under test usually polls and sends from goroutines of its
// own while the test injects updates and asserts.
type Server struct {
	// URL is the base URL without a path, e.g. http://127.0.0.1:4242, which
	// is what a user would configure as the API location.
	URL string

	token       string
	botID       int64
	botUsername string
	ts          *httptest.Server

	// closing is closed before the HTTP server shuts down so that long polls
	// and hanging failures let go; httptest.Server.Close would otherwise wait
	// for them forever.
	closing   chan struct{}
	closeOnce sync.Once

	mu sync.Mutex
	// changed is closed and replaced on every state change. Waiters select on
	// it together with their context, which sync.Cond cannot do.
	changed chan struct{}

	requests []Request
	calls    map[string]int
	blocked  map[string]int
	failures map[string][]Failure
	latency  map[string]time.Duration

	chats       map[int64]*chatState
	unreachable map[int64]bool
	migrated    map[int64]int64
	goneTopics  map[[2]int64]bool // {chat, thread} of deleted forum topics
	messages    []Message
	edits       []Edit
	answers     []CallbackAnswer
	commands    map[string][]Command

	updates      []apiUpdate
	lastUpdateID int
	pollGen      int
	queries      map[string]bool // callback query id -> already answered
	lastQueryID  int64
}

// NewServer starts a fake Bot API that accepts requests for token only. The
// bot's user id is taken from the token's numeric prefix, as Telegram does,
// so "123:abc" yields a bot with id 123.
func NewServer(token string) *Server {
	return NewServerOn(token, nil)
}

// NewServerOn is NewServer on a listener of the caller's, for example one
// opened inside a network namespace where the code under test runs; nil
// means a new one on loopback. The server closes ln when it closes.
func NewServerOn(token string, ln net.Listener) *Server {
	s := &Server{
		token:       token,
		botID:       7000000001,
		botUsername: "telegramtest_bot",
		closing:     make(chan struct{}),
		changed:     make(chan struct{}),
		calls:       map[string]int{},
		blocked:     map[string]int{},
		failures:    map[string][]Failure{},
		latency:     map[string]time.Duration{},
		chats:       map[int64]*chatState{},
		unreachable: map[int64]bool{},
		migrated:    map[int64]int64{},
		goneTopics:  map[[2]int64]bool{},
		commands:    map[string][]Command{},
		queries:     map[string]bool{},
		// Real update ids are large; starting far from zero catches clients
		// that treat offset 0 or small ids specially.
		lastUpdateID: 100000000,
		lastQueryID:  4382000000000000000,
	}
	if prefix, _, ok := strings.Cut(token, ":"); ok {
		if id, err := strconv.ParseInt(prefix, 10, 64); err == nil && id > 0 {
			s.botID = id
		}
	}
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	if ln != nil {
		s.ts.Listener.Close()
		s.ts.Listener = ln
	}
	s.ts.Start()
	s.URL = s.ts.URL
	return s
}

// Endpoint returns the format string tgbotapi.NewBotAPIWithAPIEndpoint
// expects, so tests need not know the library's path layout.
func (s *Server) Endpoint() string {
	return s.URL + "/bot%s/%s"
}

// BotID is the id getMe reports, needed to recognise the bot's own messages.
func (s *Server) BotID() int64 { return s.botID }

// BotUsername is the username getMe reports, needed for group commands of
// the form /status@name.
func (s *Server) BotUsername() string { return s.botUsername }

// Close shuts the server down. Pending long polls and hanging failures are
// cut off rather than answered, like a server going away, so Close never
// waits for a client's timeout. Calling it again is a no-op.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.ts.Close()
	})
}

// Request is one HTTP request as the fake received it, kept so tests can
// check what a client sends besides the path, e.g. that it never leaks the
// bot token into parameters or headers.
type Request struct {
	Method     string      // Bot API method from the path, as spelled by the client
	Authorized bool        // whether the path carried the server's token
	Header     http.Header // request headers
	Query      string      // raw query string
	Body       []byte      // raw body
	Form       url.Values  // decoded parameters from query and body
}

// Contains reports whether s occurs anywhere in the request except its path.
// Decoded form values are searched as well as the raw body, because form
// encoding turns a token's ':' into %3A and would hide it from a raw search.
func (r Request) Contains(s string) bool {
	if strings.Contains(r.Query, s) || bytes.Contains(r.Body, []byte(s)) {
		return true
	}
	for k, vs := range r.Header {
		if strings.Contains(k, s) {
			return true
		}
		for _, v := range vs {
			if strings.Contains(v, s) {
				return true
			}
		}
	}
	for k, vs := range r.Form {
		if strings.Contains(k, s) {
			return true
		}
		for _, v := range vs {
			if strings.Contains(v, s) {
				return true
			}
		}
	}
	return false
}

func (r Request) clone() Request {
	r.Header = r.Header.Clone()
	r.Body = bytes.Clone(r.Body)
	f := make(url.Values, len(r.Form))
	for k, v := range r.Form {
		f[k] = append([]string(nil), v...)
	}
	r.Form = f
	return r
}

// Failure describes how calls should fail. The zero value fails one call
// with a 500.
type Failure struct {
	// Times is how many calls fail; 0 means once, negative means until
	// ClearFailures.
	Times int
	// Status is the HTTP status and error_code. 0 means 429 when RetryAfter
	// is set and 500 otherwise. 502, 503 and 504 without a Description get
	// the HTML page a reverse proxy serves, which is not JSON at all.
	Status int
	// Description overrides the Bot API's wording for Status.
	Description string
	// RetryAfter, in seconds, is sent as parameters.retry_after.
	RetryAfter int
	// Hang blocks the call until the client gives up or the server closes,
	// then drops the connection without a response.
	Hang bool
}

// Fail makes the next calls of method fail as f describes; method "" matches
// every method. Failures queue up in the order given, and a method-specific
// failure is used before a catch-all one. A failed call has no effect:
// a failed sendMessage is not delivered and so not recorded.
func (s *Server) Fail(method string, f Failure) {
	if f.Times == 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(method)
	s.failures[key] = append(s.failures[key], f)
}

// ClearFailures drops all pending failures, including endless ones.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.failures)
}

// takeFailure must be called with s.mu held.
func (s *Server) takeFailure(key string) (Failure, bool) {
	for _, k := range []string{key, ""} {
		q := s.failures[k]
		if len(q) == 0 {
			continue
		}
		f := q[0]
		if q[0].Times > 0 {
			q[0].Times--
			if q[0].Times == 0 {
				q = q[1:]
			}
		}
		if len(q) == 0 {
			delete(s.failures, k)
		} else {
			s.failures[k] = q
		}
		return f, true
	}
	return Failure{}, false
}

// SetChatUnreachable makes every request about chatID fail with
// "Bad Request: chat not found", as for a chat the bot never joined or an id
// typed wrong in the configuration.
// SetTopicGone makes sendMessage to a forum topic of a chat fail with 400
// "message thread not found", as for a deleted topic or a wrong ID.
func (s *Server) SetTopicGone(chatID int64, threadID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.goneTopics[[2]int64{chatID, int64(threadID)}] = true
}

func (s *Server) SetChatUnreachable(chatID int64, unreachable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if unreachable {
		s.unreachable[chatID] = true
	} else {
		delete(s.unreachable, chatID)
	}
	s.broadcast()
}

// SetChatMigrated makes every request about chatID fail as it does for a
// group upgraded to a supergroup: 400 "Bad Request: group chat was upgraded
// to a supergroup chat" with parameters.migrate_to_chat_id set to to. A to
// of 0 ends it.
func (s *Server) SetChatMigrated(chatID, to int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if to != 0 {
		s.migrated[chatID] = to
	} else {
		delete(s.migrated, chatID)
	}
	s.broadcast()
}

// broadcast must be called with s.mu held.
func (s *Server) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// apiError is a failed call. abort means the connection is dropped without a
// response, which is what a client sees when the server goes away.
type apiError struct {
	status     int
	desc       string
	retryAfter int
	migrateTo  int64
	abort      bool
}

func badRequest(desc string) *apiError {
	return &apiError{status: http.StatusBadRequest, desc: "Bad Request: " + desc}
}

type responseParameters struct {
	RetryAfter      int   `json:"retry_after,omitempty"`
	MigrateToChatID int64 `json:"migrate_to_chat_id,omitempty"`
}

type envelope struct {
	OK          bool                `json:"ok"`
	Result      any                 `json:"result,omitempty"`
	ErrorCode   int                 `json:"error_code,omitempty"`
	Description string              `json:"description,omitempty"`
	Parameters  *responseParameters `json:"parameters,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v envelope) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own result types are marshalled, so this is a bug here.
		panic(fmt.Sprintf("telegramtest: marshal response: %v", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.abort {
		panic(http.ErrAbortHandler)
	}
	v := envelope{ErrorCode: e.status, Description: e.desc}
	if e.retryAfter > 0 || e.migrateTo != 0 {
		v.Parameters = &responseParameters{RetryAfter: e.retryAfter, MigrateToChatID: e.migrateTo}
	}
	writeJSON(w, e.status, v)
}

type methodFunc func(ctx context.Context, form url.Values) (any, *apiError)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	token, method, pathOK := splitPath(r.URL.Path)
	key := strings.ToLower(method)
	body, form, parseErr := readParams(r)

	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Method:     method,
		Authorized: pathOK && token == s.token,
		Header:     r.Header.Clone(),
		Query:      r.URL.RawQuery,
		Body:       body,
		Form:       form,
	})
	if pathOK {
		s.calls[key]++
	}
	var h methodFunc
	var fail Failure
	var failing bool
	var early *apiError
	switch {
	case !pathOK:
		early = &apiError{status: http.StatusNotFound, desc: "Not Found"}
	case token != s.token:
		early = &apiError{status: http.StatusUnauthorized, desc: "Unauthorized"}
	default:
		if h = s.handler(key); h == nil {
			early = &apiError{status: http.StatusNotFound, desc: "Not Found: method not found"}
		} else if fail, failing = s.takeFailure(key); !failing && parseErr != nil {
			early = parseErr
		}
	}
	latency := s.latency[key]
	s.broadcast()
	s.mu.Unlock()

	switch {
	case early != nil:
		writeError(w, early)
	case failing:
		s.fail(w, r, key, fail)
	default:
		res, err := h(r.Context(), form)
		s.delay(r, latency)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, envelope{OK: true, Result: res})
	}
}

// SetLatency delays the answers to method by d after the call took effect,
// as a slow link to Telegram does: a client that gives up meanwhile does not
// learn that its message was sent. 0 removes the delay.
func (s *Server) SetLatency(method string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency[strings.ToLower(method)] = d
}

func (s *Server) delay(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-s.closing:
	}
}

// splitPath takes apart /bot<token>/<method>. The token may be empty, which
// the real API answers with 404, but which a misconfigured client may send.
func splitPath(p string) (token, method string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/bot")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// readParams accepts every encoding the real API accepts: query string,
// urlencoded and multipart bodies, and JSON objects.
func readParams(r *http.Request) ([]byte, url.Values, *apiError) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, r.URL.Query(), badRequest("can't read request body")
	}
	if len(body) > maxBody {
		return nil, r.URL.Query(), &apiError{status: http.StatusRequestEntityTooLarge, desc: "Request Entity Too Large"}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		form := r.URL.Query()
		if len(bytes.TrimSpace(body)) == 0 {
			return body, form, nil
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return body, form, badRequest("can't parse JSON object")
		}
		for k, raw := range obj {
			var str string
			switch {
			case string(raw) == "null":
				continue
			case json.Unmarshal(raw, &str) == nil:
				form.Set(k, str)
			default:
				// Objects, arrays, numbers and booleans travel as their JSON
				// text, which is exactly how form-encoded clients send them.
				form.Set(k, string(raw))
			}
		}
		return body, form, nil
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxBody); err != nil {
			return body, r.URL.Query(), badRequest("can't parse multipart form")
		}
		return body, r.Form, nil
	default:
		if err := r.ParseForm(); err != nil {
			return body, r.URL.Query(), badRequest("can't parse request parameters")
		}
		return body, r.Form, nil
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, key string, f Failure) {
	if f.Hang {
		s.setBlocked(key, +1)
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		s.setBlocked(key, -1)
		panic(http.ErrAbortHandler)
	}
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
		if f.RetryAfter > 0 {
			status = http.StatusTooManyRequests
		}
	}
	if f.Description == "" && (status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout) {
		text := fmt.Sprintf("%d %s", status, http.StatusText(status))
		page := "<html>\r\n<head><title>" + text + "</title></head>\r\n<body>\r\n<center><h1>" + text +
			"</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, page)
		return
	}
	desc := f.Description
	if desc == "" {
		desc = defaultDescription(status, f.RetryAfter)
	}
	writeError(w, &apiError{status: status, desc: desc, retryAfter: f.RetryAfter})
}

func defaultDescription(status, retryAfter int) string {
	switch status {
	case http.StatusBadRequest:
		return "Bad Request"
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden: bot was kicked from the group chat"
	case http.StatusNotFound:
		return "Not Found"
	case http.StatusConflict:
		return conflictTerminated
	case http.StatusTooManyRequests:
		return fmt.Sprintf("Too Many Requests: retry after %d", retryAfter)
	default:
		return http.StatusText(status)
	}
}

const conflictTerminated = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"

func (s *Server) setBlocked(key string, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[key] += delta
	s.broadcast()
}

// WaitBlocked waits until exactly n calls of method are parked, either in a
// getUpdates long poll or in a Hang failure. Tests need it to know that the
// client is really waiting before they cancel it or close the server, and,
// with n == 0, that cancelling it really released the server side.
func (s *Server) WaitBlocked(ctx context.Context, method string, n int) error {
	key := strings.ToLower(method)
	for {
		s.mu.Lock()
		got := s.blocked[key]
		ch := s.changed
		s.mu.Unlock()
		if got == n {
			return nil
		}
		if err := s.waitChange(ctx, ch, fmt.Sprintf("%d blocked %s calls", n, method)); err != nil {
			return err
		}
	}
}

func (s *Server) waitChange(ctx context.Context, ch <-chan struct{}, what string) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("telegramtest: waiting for %s: %w", what, ctx.Err())
	case <-s.closing:
		return fmt.Errorf("telegramtest: waiting for %s: %w", what, http.ErrServerClosed)
	}
}

// waitFor scans the append-only log returned by tail for the first entry
// matching match, looking at each entry once. Entries recorded before the
// call count, so a test cannot miss one that arrived before it started
// waiting. match runs without the lock, so it may call back into the Server.
func waitFor[T any](ctx context.Context, s *Server, what string, tail func(from int) []T, match func(T) bool) (T, error) {
	next := 0
	for {
		s.mu.Lock()
		items := tail(next)
		ch := s.changed
		s.mu.Unlock()
		for _, it := range items {
			if match == nil || match(it) {
				return it, nil
			}
		}
		next += len(items)
		if err := s.waitChange(ctx, ch, what); err != nil {
			var zero T
			return zero, err
		}
	}
}

// Requests returns every request received so far, including rejected ones.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.clone()
	}
	return out
}

// Calls counts the requests to method, failed ones included, so tests can
// assert on retries. Method names are case-insensitive, as in the real API.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[strings.ToLower(method)]
}
