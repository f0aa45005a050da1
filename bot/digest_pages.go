package bot

import (
	"html"
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
// (closed or kept by someone with a long name, refused, gone), so that no
// edit of a page ever outgrows it.
type DigestPager struct {
	// StaleAfter is the digest's, shown on kept entries.
	StaleAfter time.Duration
	Location   *time.Location
}

var _ approvals.DigestPager = DigestPager{}

// longestName is the longest name esc lets through into a digest line, in
// characters that count two.
var longestName = strings.Repeat("𝕎", 64)

// Paginate returns the page of each entry of d, items first, then rules.
func (p DigestPager) Paginate(d storage.Digest) []int {
	loc, staleAfter := p.Location, p.StaleAfter
	if loc == nil {
		loc = time.Local
	}
	if staleAfter <= 0 {
		staleAfter = approvals.DefaultStaleAfter
	}
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
	measure := func() int {
		text, _ := renderDigestPage(probe, last, staleAfter, loc)
		return textLength(text)
	}
	header := measure()
	cost := make([]int, n)
	for i, it := range d.Items {
		worst := 0
		for _, st := range []storage.DigestItemState{it.State, storage.DigestOpen, storage.DigestClosed, storage.DigestKept, storage.DigestGone, storage.DigestRefused} {
			for _, note := range []storage.Note{it.Note, {Kind: storage.NoteSeeBelow}} {
				v := it
				v.Page, v.State, v.Note = last, st, note
				if st == storage.DigestClosed || st == storage.DigestKept {
					v.By = storage.User{Name: longestName}
				}
				probe.Items[i] = v
				worst = max(worst, measure()-header)
			}
		}
		probe.Items[i].Page = -1
		cost[i] = worst
	}
	for i, r := range d.Rules {
		worst := 0
		for _, forgotten := range []bool{false, true} {
			v := r
			v.Page, v.Forgotten = last, forgotten
			probe.Rules[i] = v
			// The rules' heading is counted with each rule: more than
			// it takes, never less.
			worst = max(worst, measure()-header)
		}
		probe.Rules[i].Page = -1
		cost[len(d.Items)+i] = worst
	}
	pages := make([]int, n)
	page, used := 0, header
	for i, c := range cost {
		if used+c > MaxMessageLength && used > header {
			page, used = page+1, header
		}
		pages[i], used = page, used+c
	}
	return pages
}
