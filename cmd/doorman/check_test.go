package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot"
	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/storage"
)

const (
	testToken  = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
	otherToken = "7000000002:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsbx"
	testChat   = int64(424242)
)

// testIGD is a router on httptest serving a real capture, the Cisco
// CGA4131COM's from watcher/testdata/routers: its description, its five port
// mappings and the 713 that ends the list. Its events behave like
// miniupnpd's: SUBSCRIBE is answered with a SID, then the initial event goes
// to the callback.
type testIGD struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// refuse, when set, answers every SUBSCRIBE with it.
	refuse int
	// silent sends no initial event.
	silent bool
	gena   []string
}

const (
	igdDescPath  = "/IGDdevicedesc_brlan0.xml"
	igdEventPath = "/upnp/event/WANIPConnection0"
)

func newTestIGD(t *testing.T) *testIGD {
	t.Helper()
	f := &testIGD{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *testIGD) URL() string { return f.srv.URL + igdDescPath }

func capture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "watcher", "testdata", "routers", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var indexArg = regexp.MustCompile(`<NewPortMappingIndex>([0-9]+)</NewPortMappingIndex>`)

func (f *testIGD) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == igdDescPath:
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		w.Write(capture(f.t, "cisco-cga4131com-rootdesc.xml"))
	case r.URL.Path == igdEventPath && (r.Method == "SUBSCRIBE" || r.Method == "UNSUBSCRIBE"):
		f.serveGENA(w, r)
	case r.Method == http.MethodPost && strings.Contains(r.Header.Get("SOAPAction"), "#GetGenericPortMappingEntry"):
		body, _ := io.ReadAll(r.Body)
		i := -1
		if m := indexArg.FindSubmatch(body); m != nil {
			i, _ = strconv.Atoi(string(m[1]))
		}
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		if i < 0 || i > 4 {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write(capture(f.t, "cisco-cga4131com-soap-fault-713.xml"))
			return
		}
		w.Write(capture(f.t, fmt.Sprintf("cisco-cga4131com-soap-getgeneric-%d.xml", i)))
	default:
		http.NotFound(w, r)
	}
}

func (f *testIGD) serveGENA(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.gena = append(f.gena, r.Method)
	refuse, silent := f.refuse, f.silent
	f.mu.Unlock()
	if r.Method == "UNSUBSCRIBE" {
		return
	}
	if refuse != 0 {
		w.WriteHeader(refuse)
		return
	}
	callback := strings.Trim(r.Header.Get("CALLBACK"), "<>")
	w.Header().Set("SID", "uuid:check-test-1")
	w.Header().Set("TIMEOUT", r.Header.Get("TIMEOUT"))
	w.WriteHeader(http.StatusOK)
	if silent {
		return
	}
	go func() {
		req, err := http.NewRequest("NOTIFY", callback, strings.NewReader(`<?xml version="1.0"?><e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property><PortMappingNumberOfEntries>5</PortMappingNumberOfEntries></e:property></e:propertyset>`))
		if err != nil {
			return
		}
		req.Header.Set("NT", "upnp:event")
		req.Header.Set("NTS", "upnp:propchange")
		req.Header.Set("SID", "uuid:check-test-1")
		req.Header.Set("SEQ", "0")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
}

func (f *testIGD) genaLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.gena...)
}

// runCommand runs doorman in-process with only the given environment.
func runCommand(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = run(ctx, args, env{stdout: &out, stderr: &errOut, getenv: func(k string) string { return vars[k] }})
	_, secret, _ := strings.Cut(testToken, ":")
	_, otherSecret, _ := strings.Cut(otherToken, ":")
	for _, s := range []string{out.String(), errOut.String()} {
		if strings.Contains(s, secret) || strings.Contains(s, otherSecret) {
			t.Errorf("the bot token appears in doorman's output:\n%s", s)
		}
	}
	return out.String(), errOut.String(), code
}

func checkEnv(t *testing.T, igd *testIGD, tg *telegramtest.Server) map[string]string {
	vars := map[string]string{
		"DOORMAN_IGD_URL": igd.URL(),
		"DOORMAN_DB":      filepath.Join(t.TempDir(), "doorman.db"),
		// The router is on loopback, and so is doorman's callback.
		"DOORMAN_ROUTER_TIMEOUT": "2s",
	}
	if tg != nil {
		vars["DOORMAN_TELEGRAM_TOKEN"] = testToken
		vars["DOORMAN_TELEGRAM_API_URL"] = tg.URL
		vars["DOORMAN_TELEGRAM_CHAT_ID"] = strconv.FormatInt(testChat, 10)
	}
	return vars
}

// lines returns the lines of out that start with mark and name the check.
func lineOf(out, mark, check string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, mark+" "+check+":") {
			return l
		}
	}
	return ""
}

func wantLine(t *testing.T, out, mark, check string, parts ...string) {
	t.Helper()
	l := lineOf(out, mark, check)
	if l == "" {
		t.Errorf("no %q line for %s in:\n%s", mark, check, out)
		return
	}
	for _, p := range parts {
		if !strings.Contains(l, p) {
			t.Errorf("%s line does not say %q: %s", check, p, l)
		}
	}
}

func TestCheckAllGood(t *testing.T) {
	igd := newTestIGD(t)
	tg := telegramtest.NewServer(testToken)
	t.Cleanup(tg.Close)
	out, stderr, code := runCommand(t, checkEnv(t, igd, tg), "check")
	t.Logf("doorman check:\n%s", out)
	if code != 0 {
		t.Errorf("exit %d, want 0\n%s\n%s", code, out, stderr)
	}
	wantLine(t, out, "✓", "settings", "events on")
	wantLine(t, out, "✓", "router", "CGA4131COM at "+igd.URL(), "IGDv1", "WANIPConnection:1")
	wantLine(t, out, "✓", "shares", "5 port share(s)")
	wantLine(t, out, "✓", "events", "WANIPConnection:1 subscribed", "first event reached doorman at 127.0.0.1:")
	wantLine(t, out, "–", "blocking", "cannot tell without changing a share")
	wantLine(t, out, "✓", "Telegram", "@"+tg.BotUsername())
	wantLine(t, out, "✓", "chat", "424242", "reachable", "DOORMAN_TELEGRAM_CHAT_ID")
	if !strings.HasSuffix(out, "All checks passed.\n") {
		t.Errorf("no all-clear at the end:\n%s", out)
	}
	if strings.Contains(out, "✗") {
		t.Errorf("a ✗ in:\n%s", out)
	}
	if got := igd.genaLog(); len(got) != 2 || got[0] != "SUBSCRIBE" || got[1] != "UNSUBSCRIBE" {
		t.Errorf("router saw %v, want SUBSCRIBE then UNSUBSCRIBE", got)
	}
	// Nothing was sent to the chat.
	if n := len(tg.Messages()); n != 0 {
		t.Errorf("check sent %d message(s)", n)
	}
}

func TestCheckProblems(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, vars map[string]string, igd *testIGD, tg *telegramtest.Server)
		mark  string
		check string
		say   []string
		code  int
	}{
		{
			name: "wrong token",
			setup: func(_ *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				v["DOORMAN_TELEGRAM_TOKEN"] = otherToken
			},
			mark: "✗", check: "Telegram", say: []string{"bot token was rejected (401", "Fix: copy the token again from @BotFather"}, code: 1,
		},
		{
			name: "unreachable chat",
			setup: func(_ *testing.T, _ map[string]string, _ *testIGD, tg *telegramtest.Server) {
				tg.SetChatUnreachable(testChat, true)
			},
			mark: "✗", check: "chat", say: []string{"knows no chat 424242", "Fix: send the bot a message"}, code: 1,
		},
		{
			name: "Telegram down",
			setup: func(_ *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				dead := httptest.NewServer(http.NotFoundHandler())
				dead.Close()
				v["DOORMAN_TELEGRAM_API_URL"] = dead.URL
			},
			mark: "✗", check: "Telegram", say: []string{"no answer from the Bot API", "Fix: check that this machine reaches"}, code: 1,
		},
		{
			name: "no router",
			setup: func(_ *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				dead := httptest.NewServer(http.NotFoundHandler())
				dead.Close()
				v["DOORMAN_IGD_URL"] = dead.URL + igdDescPath
			},
			mark: "✗", check: "router", say: []string{"no router found", "connection refused", "Fix: check DOORMAN_IGD_URL"}, code: 1,
		},
		{
			name: "router refuses events",
			setup: func(_ *testing.T, _ map[string]string, igd *testIGD, _ *telegramtest.Server) {
				igd.refuse = http.StatusInternalServerError
			},
			mark: "✗", check: "events", say: []string{"refused a subscription to WANIPConnection:1 (HTTP 500)", "every 30s"}, code: 1,
		},
		{
			name:  "events do not arrive",
			setup: func(_ *testing.T, _ map[string]string, igd *testIGD, _ *telegramtest.Server) { igd.silent = true },
			mark:  "✗", check: "events", say: []string{"did not reach doorman at 127.0.0.1:", "Fix: let the router reach this machine over TCP"}, code: 1,
		},
		{
			name: "events off",
			setup: func(_ *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				v["DOORMAN_EVENTS"] = "off"
			},
			mark: "–", check: "events", say: []string{"off (DOORMAN_EVENTS=off)"}, code: 0,
		},
		{
			name: "no token",
			setup: func(_ *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				delete(v, "DOORMAN_TELEGRAM_TOKEN")
			},
			mark: "–", check: "Telegram", say: []string{"not set up", "DOORMAN_TELEGRAM_TOKEN"}, code: 0,
		},
		{
			name: "not paired",
			setup: func(_ *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				delete(v, "DOORMAN_TELEGRAM_CHAT_ID")
			},
			mark: "–", check: "chat", say: []string{"none paired yet", "/start CODE"}, code: 0,
		},
		{
			name: "paired chat",
			setup: func(t *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				delete(v, "DOORMAN_TELEGRAM_CHAT_ID")
				db := openDB(t, v["DOORMAN_DB"])
				defer db.Close()
				if err := db.Update(func(tx *storage.Tx) error {
					return tx.SetMeta("owner_chat", bot.OwnerChat{ChatID: -1001234567890})
				}); err != nil {
					t.Fatal(err)
				}
			},
			mark: "✓", check: "chat", say: []string{"supergroup -1001234567890", "reachable (paired)"}, code: 0,
		},
		{
			name: "database in use",
			setup: func(t *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				delete(v, "DOORMAN_TELEGRAM_CHAT_ID")
				db := openDB(t, v["DOORMAN_DB"])
				t.Cleanup(func() { db.Close() })
			},
			mark: "–", check: "chat", say: []string{"in use by a running doorman"}, code: 0,
		},
		{
			name: "sound database",
			setup: func(t *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				openDB(t, v["DOORMAN_DB"]).Close()
			},
			mark: "✓", check: "database", say: []string{"is sound", "0 share(s)"}, code: 0,
		},
		{
			name:  "no database yet",
			setup: func(*testing.T, map[string]string, *testIGD, *telegramtest.Server) {},
			mark:  "–", check: "database", say: []string{"does not exist yet"}, code: 0,
		},
		{
			name: "damaged database",
			setup: func(t *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				delete(v, "DOORMAN_TELEGRAM_CHAT_ID")
				v["DOORMAN_DB"] = damagedDB(t)
			},
			mark: "✗", check: "database", say: []string{"is damaged", "doorman repair --db"}, code: 1,
		},
		{
			name: "bad setting",
			setup: func(_ *testing.T, v map[string]string, _ *testIGD, _ *telegramtest.Server) {
				v["DOORMAN_POLL_INTERVAL"] = "soon"
			},
			mark: "✗", check: "settings", say: []string{"DOORMAN_POLL_INTERVAL", "not a duration", "Fix:"}, code: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			igd := newTestIGD(t)
			tg := telegramtest.NewServer(testToken)
			t.Cleanup(tg.Close)
			vars := checkEnv(t, igd, tg)
			tt.setup(t, vars, igd, tg)
			out, stderr, code := runCommand(t, vars, "check")
			t.Logf("doorman check:\n%s", out)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s\n%s", code, tt.code, out, stderr)
			}
			wantLine(t, out, tt.mark, tt.check, tt.say...)
			fails := strings.Count(out, "\n✗ ")
			if strings.HasPrefix(out, "✗ ") {
				fails++
			}
			if tt.code != 0 && !strings.HasSuffix(out, fmt.Sprintf("%d problem(s) found.\n", fails)) {
				t.Errorf("no count of %d problem(s) at the end:\n%s", fails, out)
			}
			if tt.code == 0 && strings.Contains(out, "✗") {
				t.Errorf("a ✗ in:\n%s", out)
			}
		})
	}
}

func openDB(t *testing.T, path string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}
