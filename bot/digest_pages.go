package bot

import (
	"html"
	"slices"
	"strings"
	"time"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/storage"
)

// textLength is how Telegram measures a message against MaxMessageLength:
// UTF-16 code units of the text after entity parsing, that is without the
// HTML tags and with the character references decoded. An emoji or any
// other character beyond the Basic Multilingual Plane counts two.
func textLength(htmlText string) int {
	var b strings.Builder
	inTag := false
	for _, r := range htmlText {
		switch {
		case r == '<':
			inTag = true
		case r == '>' && inTag:
			inTag = false
		case !inTag:
			b.WriteRune(r)
		}
	}
	n := 0
	for _, r := range html.UnescapeString(b.String()) {
		n++
		if r > 0xFFFF {
			n++
		}
	}
	return n
}

// DigestPager fills digest pages up to Telegram's limit, as bot words them.
// Each entry is measured in the longest state a press can bring it to
// (closed or kept by someone with a long name, refused, gone), and in the
// longest of doorman's languages, so that no edit of a page ever outgrows
// it, whatever language the chat is spoken to in by then.
type DigestPager struct {
	words      []Words
	staleAfter time.Duration
	loc        *time.Location
}

// NewDigestPager returns the pager for digests worded in the catalogs of
// a (nil: the built-in ones) with staleAfter (0: the default) shown on kept
// entries, and times in loc.
func NewDigestPager(a *Audience, staleAfter time.Duration, loc *time.Location) DigestPager {
	var c *Catalog
	if a != nil {
		c = a.catalog
	} else if built, err := NewCatalog(); err == nil {
		c = built
	}
	p := DigestPager{staleAfter: staleAfter, loc: loc}
	for _, l := range langs() {
		if c != nil {
			p.words = append(p.words, c.In(l))
		}
	}
	if len(p.words) == 0 {
		p.words = []Words{{}}
	}
	if p.loc == nil {
		p.loc = time.Local
	}
	if p.staleAfter <= 0 {
		p.staleAfter = approvals.DefaultStaleAfter
	}
	return p
}

var _ approvals.DigestPager = DigestPager{}

// longestName is the longest name esc lets through into a digest line, in
// characters that count two.
var longestName = strings.Repeat("𝕎", 64)

// Paginate returns the page of each entry of d, items first, then rules.
func (p DigestPager) Paginate(d storage.Digest) []int {
	n := len(d.Items) + len(d.Rules)
	// A probe digest with no entry on the measured page but the one being
	// measured; the page numbered as high as it can get, for the widest
	// "(n/m)".
	probe := d
	probe.Items = append([]storage.DigestItem(nil), d.Items...)
	probe.Rules = append([]storage.DigestRule(nil), d.Rules...)
	probe.Pages = max(n, 2)
	last := probe.Pages - 1
	for i := range probe.Items {
		probe.Items[i].Page = -1
	}
	for i := range probe.Rules {
		probe.Rules[i].Page = -1
	}
	// Everything is measured in each language apart: a page fits when it
	// fits in all of them.
	langs := len(p.words)
	measure := func(into []int) {
		for l, w := range p.words {
			text, _ := renderDigestPage(w, probe, last, p.staleAfter, p.loc)
			into[l] = textLength(text)
		}
	}
	header := make([]int, langs)
	measure(header)
	cost := make([][]int, n)
	got := make([]int, langs)
	worstOf := func(i int) {
		measure(got)
		if cost[i] == nil {
			cost[i] = make([]int, langs)
		}
		for l := range got {
			cost[i][l] = max(cost[i][l], got[l]-header[l])
		}
	}
	for i, it := range d.Items {
		// The states approvals moves an entry to (CloseStale, KeepStale):
		// a failure leaves a short note, the explanation goes apart.
		seeBelow := storage.Note{Kind: storage.NoteSeeBelow}
		for _, to := range []struct {
			state storage.DigestItemState
			note  storage.Note
		}{
			{it.State, it.Note}, {storage.DigestOpen, seeBelow}, {storage.DigestRefused, seeBelow},
			{storage.DigestClosed, storage.Note{}}, {storage.DigestKept, storage.Note{}}, {storage.DigestGone, storage.Note{}},
		} {
			v := it
			v.Page, v.State, v.Note = last, to.state, to.note
			if to.state == storage.DigestClosed || to.state == storage.DigestKept {
				v.By = storage.User{Name: longestName}
			}
			probe.Items[i] = v
			worstOf(i)
		}
		probe.Items[i].Page = -1
	}
	for i, r := range d.Rules {
		for _, forgotten := range []bool{false, true} {
			v := r
			v.Page, v.Forgotten = last, forgotten
			probe.Rules[i] = v
			// The rules' heading is counted with each rule: more than
			// it takes, never less.
			worstOf(len(d.Items) + i)
		}
		probe.Rules[i].Page = -1
	}
	pages := make([]int, n)
	page, used, empty := 0, slices.Clone(header), true
	for i, c := range cost {
		fits := true
		for l := range used {
			fits = fits && used[l]+c[l] <= MaxMessageLength
		}
		if !fits && !empty {
			page, used = page+1, slices.Clone(header)
		}
		for l := range used {
			used[l] += c[l]
		}
		pages[i], empty = page, false
	}
	return pages
}
