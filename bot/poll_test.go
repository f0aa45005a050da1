package bot

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
)

// runPoll runs Poll in the background; stop cancels it and returns its
// error, failing the test if it does not come back promptly.
func runPoll(t *testing.T, api API, cfg PollConfig, handle func(context.Context, []Update) error) (stop func() error) {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Poll(c, api, cfg, handle) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(2 * time.Second):
				t.Error("Poll did not return within 2s of cancellation")
				err = errors.New("still running")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// batches hands the updates Poll delivers to the test.
type batches chan []Update

func (b batches) handle(_ context.Context, u []Update) error {
	b <- append([]Update(nil), u...)
	return nil
}

func (b batches) next(t *testing.T) []Update {
	t.Helper()
	select {
	case u := <-b:
		return u
	case <-time.After(5 * time.Second):
		t.Fatal("no updates within 5s")
		return nil
	}
}

// collect receives batches until n updates have come.
func (b batches) collect(t *testing.T, n int) []Update {
	t.Helper()
	var all []Update
	for len(all) < n {
		all = append(all, b.next(t)...)
	}
	return all
}

func getUpdatesOffsets(srv *telegramtest.Server) []int {
	var out []int
	for _, r := range srv.Requests() {
		if r.Method == "getUpdates" {
			n, _ := strconv.Atoi(r.Form.Get("offset"))
			out = append(out, n)
		}
	}
	return out
}

func TestPollDeliversInOrder(t *testing.T) {
	srv := newTGFake(t)
	api, _ := newTGAPI(t, srv.URL, time.Second)
	logger, logs := tgLogger(slog.LevelDebug)
	srv.SendText(1, 1, "/status")
	srv.SendText(1, 1, "two")
	qid := srv.PressButton(1, 1, 1, "allow:1")
	srv.SendText(-5, 2, "four")

	got := make(batches, 10)
	var successes sync.WaitGroup
	successes.Add(1)
	var once sync.Once
	stop := runPoll(t, api, PollConfig{Timeout: time.Second, Logger: logger, OnSuccess: func() { once.Do(successes.Done) }}, got.handle)

	first := got.collect(t, 4)
	if len(first) != 4 {
		t.Fatalf("got %d updates, want 4", len(first))
	}
	for i, u := range first {
		if i > 0 && u.ID != first[i-1].ID+1 {
			t.Errorf("update %d has id %d after %d", i, u.ID, first[i-1].ID)
		}
	}
	if first[0].Message == nil || first[0].Message.Command != "status" ||
		first[2].Callback == nil || first[2].Callback.ID != qid ||
		first[3].Message == nil || first[3].Message.ChatID != -5 {
		t.Errorf("updates out of order or mangled: %+v", first)
	}
	successes.Wait()

	srv.SendText(1, 1, "five")
	srv.SendText(1, 1, "six")
	second := got.collect(t, 2)
	if len(second) != 2 || second[0].ID != first[3].ID+1 || second[1].Message.Text != "six" {
		t.Errorf("second round = %+v, want five and six only", second)
	}
	// The poll after the last batch confirms it.
	if err := srv.WaitBlocked(tgCtxTimeout(t, 5*time.Second), "getUpdates", 1); err != nil {
		t.Fatal(err)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Poll returned %v, want context.Canceled", err)
	}

	offsets := getUpdatesOffsets(srv)
	want := []int{first[3].ID + 1, second[1].ID + 1}
	for _, w := range want {
		found := false
		for _, o := range offsets {
			found = found || o == w
		}
		if !found {
			t.Errorf("no getUpdates with offset %d in %v", w, offsets)
		}
	}
	if offsets[0] != 0 {
		t.Errorf("first poll had offset %d, want none", offsets[0])
	}
	if strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("unexpected complaints:\n%s", logs)
	}
}

func TestPollStartsAtOffset(t *testing.T) {
	srv := newTGFake(t)
	api, _ := newTGAPI(t, srv.URL, time.Second)
	srv.SendText(1, 1, "old")
	srv.SendText(1, 1, "new")
	// Learn the ids without confirming anything.
	all, err := api.GetUpdates(tgCtx(t), 0, 0)
	if err != nil || len(all) != 2 {
		t.Fatalf("GetUpdates = %+v, %v", all, err)
	}
	got := make(batches, 10)
	runPoll(t, api, PollConfig{Offset: all[1].ID, Timeout: time.Second}, got.handle)
	if b := got.next(t); len(b) != 1 || b[0].Message.Text != "new" {
		t.Errorf("first batch = %+v, want only the update at the offset", b)
	}
}

func TestPollRedeliversAfterHandleError(t *testing.T) {
	srv := newTGFake(t)
	api, _ := newTGAPI(t, srv.URL, time.Second)
	logger, logs := tgLogger(slog.LevelInfo)
	srv.SendText(1, 1, "a")
	srv.SendText(1, 1, "b")

	var mu sync.Mutex
	var seen [][]int
	var errs []error
	fail := errors.New("store unavailable")
	got := make(batches, 10)
	handle := func(c context.Context, u []Update) error {
		mu.Lock()
		defer mu.Unlock()
		ids := make([]int, len(u))
		for i := range u {
			ids[i] = u[i].ID
		}
		seen = append(seen, ids)
		if len(seen) == 1 {
			return fail
		}
		return got.handle(c, u)
	}
	cfg := PollConfig{Timeout: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logger: logger,
		OnError: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		}}
	stop := runPoll(t, api, cfg, handle)
	b := got.next(t)
	stop()

	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || len(seen[0]) != 2 || len(seen[1]) != 2 || seen[0][0] != seen[1][0] || seen[0][1] != seen[1][1] {
		t.Errorf("batches seen = %v, want the same two updates twice", seen)
	}
	if len(b) != 2 {
		t.Errorf("delivered %+v", b)
	}
	if len(errs) != 1 || !errors.Is(errs[0], fail) {
		t.Errorf("OnError saw %v", errs)
	}
	if !strings.Contains(logs.String(), "delivered again") || !strings.Contains(logs.String(), "store unavailable") {
		t.Errorf("handle failure not logged:\n%s", logs)
	}
}

func TestPollHonoursRetryAfter(t *testing.T) {
	srv := newTGFake(t)
	api, _ := newTGAPI(t, srv.URL, time.Second)
	srv.Fail("getUpdates", telegramtest.Failure{RetryAfter: 1})
	srv.SendText(1, 1, "hi")
	got := make(batches, 1)
	start := time.Now()
	runPoll(t, api, PollConfig{Timeout: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}, got.handle)
	got.next(t)
	// The backoff settings would retry after 10-20ms; Telegram said 1s.
	if d := time.Since(start); d < 950*time.Millisecond {
		t.Errorf("retried after %v, want at least 1s", d)
	}
	if n := srv.Calls("getUpdates"); n < 2 {
		t.Errorf("%d getUpdates calls", n)
	}
}

func TestPollStopsPromptly(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(srv *telegramtest.Server)
		ready   func(ctx context.Context, srv *telegramtest.Server, failed <-chan struct{}) error
	}{
		{"during a long poll", func(*telegramtest.Server) {},
			func(ctx context.Context, srv *telegramtest.Server, _ <-chan struct{}) error {
				return srv.WaitBlocked(ctx, "getUpdates", 1)
			}},
		{"during a hanging request", func(srv *telegramtest.Server) { srv.Fail("getUpdates", telegramtest.Failure{Hang: true}) },
			func(ctx context.Context, srv *telegramtest.Server, _ <-chan struct{}) error {
				return srv.WaitBlocked(ctx, "getUpdates", 1)
			}},
		{"during a backoff", func(srv *telegramtest.Server) { srv.Fail("getUpdates", telegramtest.Failure{Status: 500}) },
			func(ctx context.Context, _ *telegramtest.Server, failed <-chan struct{}) error {
				select {
				case <-failed:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}},
		{"during a retry_after", func(srv *telegramtest.Server) { srv.Fail("getUpdates", telegramtest.Failure{RetryAfter: 3600}) },
			func(ctx context.Context, _ *telegramtest.Server, failed <-chan struct{}) error {
				select {
				case <-failed:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTGFake(t)
			// A long request timeout, so only cancellation can end the call.
			api, _ := newTGAPI(t, srv.URL, time.Hour)
			tt.prepare(srv)
			failed := make(chan struct{}, 10)
			cfg := PollConfig{Timeout: time.Hour, MinBackoff: time.Hour, MaxBackoff: time.Hour,
				OnError: func(error) { failed <- struct{}{} }}
			stop := runPoll(t, api, cfg, func(context.Context, []Update) error { return nil })
			if err := tt.ready(tgCtxTimeout(t, 5*time.Second), srv, failed); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Poll returned %v, want context.Canceled", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v to stop", d)
			}
			if err := srv.WaitBlocked(tgCtxTimeout(t, 2*time.Second), "getUpdates", 0); err != nil {
				t.Errorf("the server side was not released: %v", err)
			}
		})
	}
}

func TestPollUnauthorizedDoesNotSpin(t *testing.T) {
	srv := newTGFake(t)
	api, _ := newTGAPI(t, srv.URL, time.Second)
	logger, logs := tgLogger(slog.LevelInfo)
	srv.Fail("getUpdates", telegramtest.Failure{Status: 401, Times: -1})
	var mu sync.Mutex
	var errs []error
	cfg := PollConfig{Timeout: time.Second, MinBackoff: time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: logger,
		OnError: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		}}
	stop := runPoll(t, api, cfg, func(context.Context, []Update) error { return nil })
	time.Sleep(550 * time.Millisecond)
	stop()

	// At MaxBackoff apart: calls at 0, 100, ..., 500ms.
	if n := srv.Calls("getUpdates"); n < 2 || n > 7 {
		t.Errorf("%d getUpdates calls in 550ms with a 100ms maximum backoff", n)
	}
	out := logs.String()
	if n := strings.Count(out, "level=ERROR"); n != 1 || !strings.Contains(out, "token was rejected") {
		t.Errorf("want one error about the token, got %d lines:\n%s", n, out)
	}
	if strings.Contains(out, tgToken) {
		t.Errorf("the token leaked into the log:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) < 2 || !IsUnauthorized(errs[0]) {
		t.Errorf("OnError saw %v", errs)
	}
}

func TestPollConflictExplained(t *testing.T) {
	srv := newTGFake(t)
	api, _ := newTGAPI(t, srv.URL, time.Second)
	logger, logs := tgLogger(slog.LevelInfo)
	srv.Fail("getUpdates", telegramtest.Failure{Status: 409, Times: 2})
	srv.SendText(1, 1, "hi")
	got := make(batches, 1)
	runPoll(t, api, PollConfig{Timeout: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logger: logger}, got.handle)
	if b := got.next(t); len(b) != 1 {
		t.Errorf("delivered %+v", b)
	}
	// The recovery is logged after the batch was handled.
	out := logs.String()
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(out, "polling works again") && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		out = logs.String()
	}
	if n := strings.Count(out, "another doorman, or a webhook"); n != 1 {
		t.Errorf("conflict explained %d times, want once per streak:\n%s", n, out)
	}
	if !strings.Contains(out, "polling works again") || !strings.Contains(out, "failures=2") {
		t.Errorf("recovery not logged:\n%s", out)
	}
}

// scriptedAPI answers GetUpdates from a script and cancels the poll when
// the script runs out.
type scriptedAPI struct {
	API     // only GetUpdates is called
	cancel  context.CancelFunc
	script  []scriptStep
	offsets []int
}

type scriptStep struct {
	updates []Update
	err     error
}

func (s *scriptedAPI) GetUpdates(ctx context.Context, offset int, _ time.Duration) ([]Update, error) {
	s.offsets = append(s.offsets, offset)
	if len(s.script) == 0 {
		s.cancel()
		return nil, &APIError{Method: "getUpdates", Err: ctx.Err(), Retryable: false}
	}
	step := s.script[0]
	s.script = s.script[1:]
	return step.updates, step.err
}

func TestPollDelays(t *testing.T) {
	e500 := &APIError{Method: "getUpdates", Code: 500, Description: "Internal Server Error", Retryable: true}
	e429 := &APIError{Method: "getUpdates", Code: 429, Description: "Too Many Requests: retry after 7", RetryAfter: 7 * time.Second, Retryable: true}
	e401 := &APIError{Method: "getUpdates", Code: 401, Description: "Unauthorized"}
	e409 := &APIError{Method: "getUpdates", Code: 409, Description: "Conflict: terminated by other getUpdates request", Retryable: true}
	wire := &APIError{Method: "getUpdates", Err: errors.New("connection refused"), Retryable: true}
	upd := func(ids ...int) []Update {
		out := make([]Update, len(ids))
		for i, id := range ids {
			out[i] = Update{ID: id, Message: &Message{ID: id, Text: "x"}}
		}
		return out
	}
	s := time.Second
	script := []scriptStep{
		{err: e500}, {err: e500}, {err: wire}, {err: e500}, {err: e500}, // growing to the cap
		{updates: upd(10, 11)},   // success resets
		{err: e500},              // back to the minimum
		{err: e429},              // exactly what Telegram asked for
		{err: e401}, {err: e401}, // the maximum, whatever the count
		{err: e409},
		{updates: upd(12)},     // handle fails on 12
		{updates: upd(12, 13)}, // redelivered, handled
		{updates: upd(11, 14)}, // 11 was confirmed already and is dropped
		{updates: []Update{}},  // an early empty answer pauses
		{updates: upd(15)},
	}
	tests := []struct {
		name   string
		jitter func(time.Duration) time.Duration
		want   []time.Duration
	}{
		{"no jitter", func(time.Duration) time.Duration { return 0 },
			[]time.Duration{1 * s, 1 * s, 2 * s, 2500 * time.Millisecond, 2500 * time.Millisecond,
				1 * s, 7 * s, 5 * s, 5 * s, 2500 * time.Millisecond, 2500 * time.Millisecond, 1 * s}},
		{"full jitter", func(d time.Duration) time.Duration { return d },
			[]time.Duration{1 * s, 2 * s, 4 * s, 5 * s, 5 * s,
				1 * s, 7 * s, 5 * s, 5 * s, 5 * s, 5 * s, 1 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, cancel := context.WithCancel(context.Background())
			defer cancel()
			api := &scriptedAPI{cancel: cancel, script: append([]scriptStep(nil), script...)}
			var slept []time.Duration
			var handled []int
			handleFailed := false
			logger, logs := tgLogger(slog.LevelInfo)
			var successes, failures int
			cfg := PollConfig{
				Timeout: 30 * time.Second, MinBackoff: s, MaxBackoff: 5 * s, Logger: logger,
				OnSuccess: func() { successes++ },
				OnError:   func(error) { failures++ },
				sleep: func(ctx context.Context, d time.Duration) error {
					slept = append(slept, d)
					return ctx.Err()
				},
				jitter: tt.jitter,
			}
			err := Poll(c, api, cfg, func(_ context.Context, u []Update) error {
				if u[0].ID == 12 && !handleFailed {
					handleFailed = true
					return errors.New("disk full")
				}
				for _, x := range u {
					handled = append(handled, x.ID)
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Poll = %v", err)
			}
			if len(slept) != len(tt.want) {
				t.Fatalf("slept %v, want %v", slept, tt.want)
			}
			for i := range slept {
				if slept[i] != tt.want[i] {
					t.Errorf("sleep %d = %v, want %v (all: %v)", i, slept[i], tt.want[i], slept)
				}
			}
			wantOffsets := []int{0, 0, 0, 0, 0, 0, 12, 12, 12, 12, 12, 12, 12, 14, 15, 15, 16}
			if len(api.offsets) != len(wantOffsets) {
				t.Fatalf("offsets = %v, want %v", api.offsets, wantOffsets)
			}
			for i := range wantOffsets {
				if api.offsets[i] != wantOffsets[i] {
					t.Errorf("offsets = %v, want %v", api.offsets, wantOffsets)
					break
				}
			}
			if want := "10 11 12 13 14 15"; fmtInts(handled) != want {
				t.Errorf("handled %v, want %s", handled, want)
			}
			if successes != 5 || failures != 11 {
				t.Errorf("OnSuccess %d times, OnError %d times; want 5 and 11", successes, failures)
			}
			out := logs.String()
			if strings.Count(out, "level=ERROR") != 1 || strings.Count(out, "another doorman") != 1 {
				t.Errorf("401 and 409 should be explained once each:\n%s", out)
			}
		})
	}
}

func fmtInts(v []int) string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, " ")
}

func TestPollDelayBounds(t *testing.T) {
	cfg := PollConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: 3 * time.Second}.withDefaults()
	p := &poller{cfg: cfg}
	err := &APIError{Code: 502, Retryable: true}
	prevCeil := time.Duration(0)
	for n := 1; n <= 20; n++ {
		p.failures = n
		for range 50 {
			d := p.delay(err, failPoll)
			if d < cfg.MinBackoff || d > cfg.MaxBackoff {
				t.Fatalf("delay after %d failures = %v, outside [%v, %v]", n, d, cfg.MinBackoff, cfg.MaxBackoff)
			}
		}
		ceil := min(cfg.MinBackoff<<(n-1), cfg.MaxBackoff)
		if ceil < prevCeil {
			t.Fatalf("ceiling shrank at %d", n)
		}
		prevCeil = ceil
	}
}
