package chatpng

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Style is how a span of text is set.
type Style uint8

const (
	Bold Style = 1 << iota
	Italic
	Code
)

func (s Style) String() string {
	var parts []string
	for _, f := range []struct {
		s    Style
		name string
	}{{Bold, "bold"}, {Italic, "italic"}, {Code, "code"}} {
		if s&f.s != 0 {
			parts = append(parts, f.name)
		}
	}
	if len(parts) == 0 {
		return "plain"
	}
	return strings.Join(parts, "+")
}

// Span is a run of text in one style.
type Span struct {
	Text  string
	Style Style
}

// tags maps the tags of Telegram's HTML that change how text looks to the
// style they set. Telegram also knows <u>, <s>, <a>, <tg-spoiler> and more;
// doorman sends none of them, so here they are text like any unknown tag.
var tags = map[string]Style{
	"b": Bold, "strong": Bold,
	"i": Italic, "em": Italic,
	"code": Code, "pre": Code,
}

// Parse reads the subset of Telegram's HTML that doorman writes: <b>, <i>
// and <code> (and their synonyms <strong>, <em>, <pre>), nested in any
// order, the entities &lt; &gt; &amp; &quot; and numeric ones (&#60;,
// &#x3C;). Anything else is kept as the text it is: an unknown tag, a
// closing tag that closes nothing, an unknown or malformed entity, a lone
// "<" or "&". A tag left open runs to the end. Adjacent spans of the same
// style are merged and empty ones dropped.
func Parse(s string) []Span {
	var (
		out   []Span
		cur   strings.Builder
		open  = map[Style]int{}
		style Style
	)
	flush := func() {
		if cur.Len() == 0 {
			return
		}
		if n := len(out); n > 0 && out[n-1].Style == style {
			out[n-1].Text += cur.String()
		} else {
			out = append(out, Span{Text: cur.String(), Style: style})
		}
		cur.Reset()
	}
	restyle := func() {
		var st Style
		for s, n := range open {
			if n > 0 {
				st |= s
			}
		}
		if st != style {
			flush()
			style = st
		}
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case '<':
			if name, closing, n, ok := readTag(s[i:]); ok {
				st := tags[name]
				if !closing {
					open[st]++
					restyle()
					i += n
					continue
				}
				if open[st] > 0 {
					open[st]--
					restyle()
					i += n
					continue
				}
			}
		case '&':
			if r, n, ok := readEntity(s[i:]); ok {
				cur.WriteRune(r)
				i += n
				continue
			}
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		cur.WriteRune(r)
		i += n
	}
	flush()
	return out
}

// readTag reads a known tag at the start of s: "<b>", "</b>", or an opening
// tag with attributes ("<code class=…>", "<pre …>"), as Telegram allows on
// code blocks. Names are matched without regard to case.
func readTag(s string) (name string, closing bool, n int, ok bool) {
	end := strings.IndexByte(s, '>')
	if end < 0 {
		return "", false, 0, false
	}
	body := s[1:end]
	if strings.ContainsAny(body, "<\n") {
		return "", false, 0, false
	}
	if strings.HasPrefix(body, "/") {
		closing, body = true, body[1:]
	}
	name, attrs, _ := strings.Cut(body, " ")
	name = strings.ToLower(name)
	if _, known := tags[name]; !known || (closing && attrs != "") {
		return "", false, 0, false
	}
	return name, closing, end + 1, true
}

// named are the only named entities Telegram knows.
var named = map[string]rune{"lt": '<', "gt": '>', "amp": '&', "quot": '"'}

// readEntity reads an entity at the start of s.
func readEntity(s string) (rune, int, bool) {
	end := strings.IndexByte(s, ';')
	if end < 2 || end > 12 {
		return 0, 0, false
	}
	body := s[1:end]
	if r, ok := named[body]; ok {
		return r, end + 1, true
	}
	if body[0] != '#' {
		return 0, 0, false
	}
	digits, base := body[1:], 10
	if len(digits) > 0 && (digits[0] == 'x' || digits[0] == 'X') {
		digits, base = digits[1:], 16
	}
	if digits == "" || strings.ContainsAny(digits, "+-_") {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil || v == 0 || v > utf8.MaxRune || (v >= 0xd800 && v <= 0xdfff) {
		return 0, 0, false
	}
	return rune(v), end + 1, true
}
