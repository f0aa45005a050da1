package bot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// ageShares makes every stored share a month old.
func (h *harness) ageShares() {
	h.t.Helper()
	err := h.db.Update(func(tx *storage.Tx) error {
		all, err := tx.Shares("")
		for _, s := range all {
			s.FirstSeen = s.FirstSeen.Add(-30 * 24 * time.Hour)
			if err := tx.PutShare(s); err != nil {
				return err
			}
		}
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func TestDigestCommandAndButtons(t *testing.T) {
	h := newHarness(t, []int64{ownerUser})
	rdp := mapping(3389, "192.168.77.40", `RDP <script>alert(1)</script>`)
	web := mapping(8123, "192.168.77.21", "home assistant")
	web.LeaseDuration = time.Hour
	h.list(rdp, web)
	if _, err := h.tg.WaitMessage(h.ctx(), nil); err != nil {
		t.Fatal(err)
	}
	h.ageShares()
	h.tg.SendText(ownerChat, ownerUser, "/digest")
	d, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return strings.Contains(m.Text, "Digest") })
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 worth closing", "⚠️ 1 risky", "1. ⚠️ <b>192.168.77.40</b> TCP 3389", "&lt;script&gt;", "Remote Desktop", "open for 30 days"} {
		if !strings.Contains(d.Text, want) {
			t.Errorf("digest lacks %q:\n%s", want, d.Text)
		}
	}
	if strings.Contains(d.Text, "<script>") {
		t.Error("a description's markup reached the digest")
	}
	// Close all risky, then Close 2, then Keep on a closed one.
	if len(d.Buttons) != 3 || !strings.Contains(d.Buttons[0][0].Text, "Close all risky (1)") {
		t.Fatalf("buttons = %+v", d.Buttons)
	}
	for _, row := range d.Buttons {
		for _, b := range row {
			if len(b.CallbackData) > 64 {
				t.Errorf("callback data %q too long", b.CallbackData)
			}
		}
	}
	if ans := h.press(ownerUser, d, d.Buttons[0][0].CallbackData); !strings.Contains(ans.Text, "Closing 1 risky") {
		t.Errorf("answer %q", ans.Text)
	}
	e, err := h.tg.WaitEdit(h.ctx(), func(e telegramtest.Edit) bool { return e.MessageID == d.MessageID })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.Text, "closed by") || len(e.Buttons) != 1 {
		t.Errorf("edit after closing risky = %+v", e)
	}
	if del := h.router.Deletes(); len(del) != 1 || del[0] != rdp.Key() {
		t.Errorf("deletes %+v", del)
	}
	keep := e.Buttons[0][1].CallbackData
	if ans := h.press(ownerUser, d, keep); !strings.Contains(ans.Text, "Kept") {
		t.Errorf("keep answer %q", ans.Text)
	}
	if ans := h.press(ownerUser, d, keep); !strings.Contains(ans.Text, "Already done") {
		t.Errorf("second keep answer %q", ans.Text)
	}
	if ans := h.press(strangerID, d, keep); !strings.Contains(ans.Text, "not allowed") {
		t.Errorf("stranger's keep answer %q", ans.Text)
	}
	for _, forged := range []string{"c:999.0", "c:1.99", "k:1.-1", "r:0", "c:1", "c:01.0"} {
		ans := h.press(ownerUser, d, forged)
		if !strings.Contains(ans.Text, "Unknown") && !strings.Contains(ans.Text, "does not know") {
			t.Errorf("forged %q answered %q", forged, ans.Text)
		}
	}
	if n := len(h.router.Deletes()); n != 1 {
		t.Errorf("%d deletes after forged presses", n)
	}
}

func TestDigestAllClearAndLongPages(t *testing.T) {
	h := newHarness(t, nil)
	h.list()
	h.tg.SendText(ownerChat, ownerUser, "/digest")
	if _, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return strings.Contains(m.Text, "nothing stale") }); err != nil {
		t.Fatal(err)
	}
	var ms []watcher.Mapping
	for i := range 20 {
		ms = append(ms, mapping(uint16(30000+i), "192.168.77.21", strings.Repeat("long description ", 30)+fmt.Sprint(i)))
	}
	h.list(ms...)
	h.ageShares()
	h.tg.SendText(ownerChat, ownerUser, "/digest")
	// The pages are as full as Telegram's limit lets them be: fewer than
	// the three of eight entries each that a fixed count made.
	first, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return strings.Contains(m.Text, "(1/") })
	if err != nil {
		t.Fatal(err)
	}
	var pages int
	if _, err := fmt.Sscanf(first.Text[strings.Index(first.Text, "(1/"):], "(1/%d)", &pages); err != nil || pages < 2 || pages > 2 {
		t.Fatalf("%d pages (%v), want 2", pages, err)
	}
	for page := 1; page <= pages; page++ {
		m, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool {
			return strings.Contains(m.Text, fmt.Sprintf("(%d/%d)", page, pages))
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := textLength(m.Text); n > MaxMessageLength {
			t.Errorf("page %d is %d long", page, n)
		}
	}
}

func TestParseDigestData(t *testing.T) {
	tests := []struct {
		in   string
		verb string
		id   uint64
		idx  int
		ok   bool
	}{
		{"c:1.0", "c", 1, 0, true},
		{"k:42.7", "k", 42, 7, true},
		{"g:3.1", "g", 3, 1, true},
		{"r:5", "r", 5, 0, true},
		{"r:5.1", "", 0, 0, false},
		{"c:5", "", 0, 0, false},
		{"c:0.1", "", 0, 0, false},
		{"c:1.01", "", 0, 0, false},
		{"c:1.-1", "", 0, 0, false},
		{"c:1.99999", "", 0, 0, false},
		{"x:1.1", "", 0, 0, false},
	}
	for _, tt := range tests {
		verb, id, idx, ok := parseDigestData(tt.in)
		if verb != tt.verb || id != tt.id || idx != tt.idx || ok != tt.ok {
			t.Errorf("parseDigestData(%q) = %q %d %d %v", tt.in, verb, id, idx, ok)
		}
	}
}

func FuzzParseDigestData(f *testing.F) {
	for _, s := range []string{"c:1.0", "k:42.7", "r:5", "g:3.1", "c:", "c:1.", ":", "r:18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		verb, id, idx, ok := parseDigestData(data)
		if ok && digestData(verb, id, idx) != data {
			t.Errorf("%q parsed as %q %d %d, which writes back differently", data, verb, id, idx)
		}
	})
}
