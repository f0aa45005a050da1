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

func TestTextLength(t *testing.T) {
	tests := []struct {
		html string
		want int
	}{
		{"", 0},
		{"plain", 5},
		{"<b>bold</b> &amp; <i>it</i>", 9},
		{"&lt;b&gt;", 3},
		{"&#34;x&#39;", 3},
		{"é", 1},
		{"€", 1},
		{"😀", 2},
		{"𝕎𝕎", 4},
		{"👨‍👩‍👧", 8}, // three emoji and two zero-width joiners
		{`<a href="https://x">link</a>`, 4},
	}
	for _, tt := range tests {
		if got := textLength(tt.html); got != tt.want {
			t.Errorf("textLength(%q) = %d, want %d", tt.html, got, tt.want)
		}
	}
}

// astralDigest is a digest whose every name and description is as long as
// esc lets it be, in characters that count two.
func astralDigest(items, rules int) storage.Digest {
	d := storage.Digest{ID: 7, CreatedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), OpenShares: items}
	long := func(n int) string { return strings.Repeat("😀𝕎", n) }
	for i := range items {
		m := watcher.Mapping{Protocol: "TCP", ExternalPort: uint16(40000 + i), InternalPort: 23, InternalClient: long(30), Description: long(50)}
		d.Items = append(d.Items, storage.DigestItem{
			ShareKey: fmt.Sprint(i), Mapping: m, OpenFor: 400 * 24 * time.Hour, Risk: long(70),
			Reasons: []storage.StaleReason{{Kind: "old", OpenFor: 400 * 24 * time.Hour}, {Kind: "permanent"}, {Text: long(100)}},
		})
	}
	for i := range rules {
		d.Rules = append(d.Rules, storage.DigestRule{RuleID: uint64(i + 1), Kind: storage.RuleBlock, IdleFor: 90 * 24 * time.Hour,
			Service: storage.ServiceKey{InternalClient: long(30), Protocol: "UDP", InternalPort: 5000, Description: long(50)}})
	}
	return d
}

// Every page fits one message in Telegram's measure, in whatever state the
// presses leave its entries; and the pages are filled, not cut at a count.
func TestDigestPagesFitInEveryState(t *testing.T) {
	p := NewDigestPager(nil, 0, time.UTC)
	for _, size := range [][2]int{{1, 0}, {0, 3}, {30, 0}, {45, 12}} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			d := astralDigest(size[0], size[1])
			pages := p.Paginate(d)
			if len(pages) != size[0]+size[1] {
				t.Fatalf("%d pages for %d entries", len(pages), size[0]+size[1])
			}
			for i := range d.Items {
				d.Items[i].Page = pages[i]
			}
			for i := range d.Rules {
				d.Rules[i].Page = pages[len(d.Items)+i]
			}
			if n := len(pages); n > 0 {
				d.Pages = pages[n-1] + 1
			}
			d.MessageIDs = make([]int, d.Pages)
			states := []func(*storage.Digest){
				func(*storage.Digest) {},
				func(d *storage.Digest) {
					for i := range d.Items {
						d.Items[i].State, d.Items[i].By = storage.DigestKept, storage.User{Name: strings.Repeat("👑", 100)}
					}
					for i := range d.Rules {
						d.Rules[i].Forgotten = true
					}
				},
				func(d *storage.Digest) {
					for i := range d.Items {
						d.Items[i].State, d.Items[i].By = storage.DigestClosed, storage.User{Name: strings.Repeat("👑", 100)}
					}
				},
				func(d *storage.Digest) {
					for i := range d.Items {
						d.Items[i].State, d.Items[i].Note = storage.DigestRefused, storage.Note{Kind: storage.NoteSeeBelow}
					}
				},
			}
			for si, set := range states {
				v := d
				v.Items = append([]storage.DigestItem(nil), d.Items...)
				v.Rules = append([]storage.DigestRule(nil), d.Rules...)
				set(&v)
				for page := range v.Pages {
					for _, w := range p.words {
						text, _ := renderDigestPage(w, v, page, 0, time.UTC)
						if n := textLength(text); n > MaxMessageLength {
							t.Errorf("%s, state %d, page %d/%d: %d UTF-16 units", w.Lang(), si, page+1, v.Pages, n)
						}
					}
				}
			}
			// Full: a page and the first entry of the next would not fit.
			for page := 0; page+1 < d.Pages; page++ {
				v := d
				v.Items = append([]storage.DigestItem(nil), d.Items...)
				v.Rules = append([]storage.DigestRule(nil), d.Rules...)
				moved := false
				for i := range v.Items {
					if v.Items[i].Page == page+1 && !moved {
						v.Items[i].Page, moved = page, true
					}
				}
				for i := range v.Rules {
					if v.Rules[i].Page == page+1 && !moved {
						v.Rules[i].Page, moved = page, true
					}
				}
				states[1](&v)
				text, _ := renderDigestPage(p.words[0], v, page, 0, time.UTC)
				if n := textLength(text); n <= MaxMessageLength-300 {
					t.Errorf("page %d is not full: with the next entry it would be %d", page+1, n)
				}
			}
		})
	}
}

// Through Telegram (the fake measures as Telegram does): a digest of
// emoji-laden shares goes out, and so does every edit a press makes.
func TestAstralDigestAndItsEditsAreAccepted(t *testing.T) {
	h := newHarness(t, nil)
	h.list()
	var ms []watcher.Mapping
	for i := range 25 {
		ms = append(ms, mapping(uint16(30000+i), "192.168.77.21", strings.Repeat("😀𝕎", 40)+fmt.Sprint(i)))
	}
	h.list(ms...)
	h.ageShares()
	h.tg.SendText(ownerChat, ownerUser, "/digest")
	page, err := h.tg.WaitMessage(h.ctx(), func(m telegramtest.Message) bool { return strings.Contains(m.Text, "(1/") })
	if err != nil {
		t.Fatal(err)
	}
	pressed := 0
	for _, row := range page.Buttons {
		for _, b := range row {
			if strings.HasPrefix(b.CallbackData, verbKeep+":") {
				h.press(ownerUser, page, b.CallbackData)
				pressed++
			}
		}
	}
	if pressed < 9 {
		t.Errorf("%d entries on the first page, want more than the 8 a fixed count allowed", pressed)
	}
	want := fmt.Sprintf("%d. ", pressed)
	edit, err := h.tg.WaitEdit(h.ctx(), func(e telegramtest.Edit) bool {
		return e.MessageID == page.MessageID && strings.Count(e.Text, "kept by") == pressed && strings.Contains(e.Text, want)
	})
	if err != nil {
		t.Fatalf("the page with every entry kept never came: %v", err)
	}
	if n := textLength(edit.Text); n > MaxMessageLength {
		t.Errorf("edit is %d long", n)
	}
}
