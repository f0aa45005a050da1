package bot

import (
	"fmt"
	"slices"
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

// A digest page for a German-speaking chat: the words of the FRITZ!Box's
// own interface, and the same page in English as it always read.
func TestDigestPageInGerman(t *testing.T) {
	c, err := NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	d := storage.Digest{
		ID: 3, Due: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC), OpenShares: 1,
		Items: []storage.DigestItem{
			{Mapping: mapping(3389, "192.168.77.40", "rdp"), Risk: "Remote Desktop", Reasons: []storage.StaleReason{{Kind: "old", OpenFor: 30 * day}, {Kind: "permanent"}}},
			{Mapping: mapping(8123, "192.168.77.21", ""), Reasons: []storage.StaleReason{{Kind: "device-away", AwayFor: 3 * time.Hour}}, State: storage.DigestKept, By: storage.User{Name: "Anna"}},
		},
		Rules: []storage.DigestRule{{Kind: storage.RuleBlock, Service: storage.ServiceKey{InternalClient: "192.168.77.50", Protocol: "UDP", InternalPort: 5000}, IdleFor: 90 * day}},
	}
	tests := []struct {
		lang    Lang
		want    []string
		buttons []string
	}{
		{German, []string{
			"🧹 <b>Wöchentliche Übersicht</b>", "1 Portfreigabe offen · 2 besser zu schließen · ⚠️ 1 riskant · 1 Regel ungenutzt",
			" · „rdp“", "Grund: schon 30 Tage offen; dauerhaft: sie schließt sich nie von selbst",
			"das Gerät wurde 3 Stunden lang nicht im Netzwerk gesehen", "behalten von Anna; 14 Tage lang nicht wieder aufgeführt",
			"<b>Regeln ohne Treffer</b>", "3. ⛔ gesperrt <b>192.168.77.50</b> UDP Port 5000 · 90 Tage lang nichts",
		}, []string{"⚠️ Alle riskanten schließen (1)", "🚪 Schließen 1", "💤 Behalten 1", "🗑 Regel 3 vergessen"}},
		{English, []string{
			"🧹 <b>Weekly digest</b>", "\n1 port share open · 2 worth closing · ⚠️ 1 risky · 1 rule unused",
			" · “rdp”", "why: open for 30 days; permanent: it never closes by itself",
			"the device has not been seen on the network for 3 hours", "💤 kept by Anna; not listed again for 14d",
			"<b>Rules that matched nothing</b>", "3. ⛔ blocked <b>192.168.77.50</b> UDP port 5000 · nothing for 90d",
		}, []string{"⚠️ Close all risky (1)", "🚪 Close 1", "💤 Keep 1", "🗑 Forget rule 3"}},
	}
	for _, tt := range tests {
		text, kb := renderDigestPage(c.In(tt.lang), d, 0, 14*day, time.UTC)
		for _, want := range tt.want {
			if !strings.Contains(text, want) {
				t.Errorf("%s page lacks %q:\n%s", tt.lang, want, text)
			}
		}
		var buttons []string
		for _, row := range kb {
			for _, b := range row {
				buttons = append(buttons, b.Text)
			}
		}
		if !slices.Equal(buttons, tt.buttons) {
			t.Errorf("%s buttons = %q, want %q", tt.lang, buttons, tt.buttons)
		}
	}
	if got := c.In(German).N("DigestClosingRisky", 2); got != "2 riskante Portfreigaben werden geschlossen…" {
		t.Errorf("German answer to Close all risky = %q", got)
	}
	empty := storage.Digest{OpenShares: 1}
	if got, _ := renderDigestPage(c.In(German), empty, 0, 0, time.UTC); got != "🧹 <b>Übersicht</b>: nichts Veraltetes. 1 Portfreigabe offen, keine vergessen. Doorman passt auf." {
		t.Errorf("German all-clear = %q", got)
	}
	if got, _ := renderDigestPage(c.In(English), empty, 0, 0, time.UTC); got != "🧹 <b>Digest</b>: nothing stale. 1 port share open, none forgotten. Doorman is watching." {
		t.Errorf("English all-clear = %q", got)
	}
}

// duration is formatDuration's English, unit for unit.
func TestShortDurationMatchesFormatDuration(t *testing.T) {
	c, err := NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, time.Second, 59 * time.Second, time.Minute, 59 * time.Minute, time.Hour, 2*time.Hour + 5*time.Minute, 47 * time.Hour, 48 * time.Hour, 14 * 24 * time.Hour} {
		if got, want := c.In(English).duration(d), formatDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
	if got := c.In(German).duration(2*time.Hour + 5*time.Minute); got != "2 Std. 05 Min." {
		t.Errorf("German 2h05m = %q", got)
	}
}
