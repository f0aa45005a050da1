package chatpng

import (
	"html"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Span
	}{
		{"plain", "just text", []Span{{"just text", 0}}},
		{"empty", "", nil},
		{"bold and italic", "<b>bold</b> and <i>it</i>", []Span{{"bold", Bold}, {" and ", 0}, {"it", Italic}}},
		{"nested", "<b>a<i>b<code>c</code></i>d</b>e", []Span{{"a", Bold}, {"b", Bold | Italic}, {"c", Bold | Italic | Code}, {"d", Bold}, {"e", 0}}},
		{"overlapping closes", "<b>a<i>b</b>c</i>", []Span{{"a", Bold}, {"b", Bold | Italic}, {"c", Italic}}},
		{"same tag twice", "<b>a<b>b</b>c</b>d", []Span{{"abc", Bold}, {"d", 0}}},
		{"synonyms", "<strong>s</strong><em>e</em><pre>p</pre>", []Span{{"s", Bold}, {"e", Italic}, {"p", Code}}},
		{"upper case", "<B>x</B>", []Span{{"x", Bold}}},
		{"code with a language", `<code class="language-go">x := 1</code>`, []Span{{"x := 1", Code}}},
		{"left open", "<b>runs to the end", []Span{{"runs to the end", Bold}}},
		{"empty tags", "<b></b><i></i>x", []Span{{"x", 0}}},
		{"named entities", "&lt;b&gt; &amp; &quot;q&quot;", []Span{{`<b> & "q"`, 0}}},
		{"numeric entities", "&#60;&#x3C;&#X3c;&#8594;&#x1F6AA;", []Span{{"<<<→🚪", 0}}},
		{"entity in code", "<code>a &lt; b</code>", []Span{{"a < b", Code}}},
		{"entities are decoded once", "&amp;lt;", []Span{{"&lt;", 0}}},
		{"decoded markup stays text", "&lt;b&gt;x&lt;/b&gt;", []Span{{"<b>x</b>", 0}}},
		{"unknown named entities", "&nbsp; &copy; &LT;", []Span{{"&nbsp; &copy; &LT;", 0}}},
		{"malformed numeric entities", "&#; &#x; &#xZZ; &#0; &#55296; &#1114112; &#+5; &#99999999999999;", []Span{{"&#; &#x; &#xZZ; &#0; &#55296; &#1114112; &#+5; &#99999999999999;", 0}}},
		{"lone ampersand and brackets", "a & b < c > d &", []Span{{"a & b < c > d &", 0}}},
		{"unknown tags are text", `<a href="https://x.example/">link</a> <u>u</u> <tg-spoiler>s</tg-spoiler>`, []Span{{`<a href="https://x.example/">link</a> <u>u</u> <tg-spoiler>s</tg-spoiler>`, 0}}},
		{"unknown tag inside bold", "<b>a <blink>b</blink></b>", []Span{{"a <blink>b</blink>", Bold}}},
		{"closing tag that closes nothing", "</b>x</i>", []Span{{"</b>x</i>", 0}}},
		{"closing tag with attributes", "<b>x</b class=y>", []Span{{"x</b class=y>", Bold}}},
		{"tag across a line break", "<b\n>x", []Span{{"<b\n>x", 0}}},
		{"unterminated tag", "<b", []Span{{"<b", 0}}},
		{"bracket inside", "<<b>x</b>", []Span{{"<", 0}, {"x", Bold}}},
		{"line breaks kept", "a\n\n<b>b</b>\nc", []Span{{"a\n\n", 0}, {"b", Bold}, {"\nc", 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Parse(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// The bot escapes device-supplied text with html.EscapeString; whatever it
// was, it comes back as plain text.
func TestParseEscapedText(t *testing.T) {
	for _, s := range []string{`<b>x</b>`, `a & b`, `"quoted" 'single'`, "&lt;", "<i>rdp</i> &amp; &#60;"} {
		got := Parse(html.EscapeString(s))
		if len(got) != 1 || got[0] != (Span{s, 0}) {
			t.Errorf("Parse(EscapeString(%q)) = %q", s, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"<b>a<i>b</i></b>", "&lt;&#60;&#x3c;&amp;", "<code class=x>c</code>", "</b><b", "&#99999999;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spans := Parse(s)
		var all strings.Builder
		for i, sp := range spans {
			if sp.Text == "" {
				t.Errorf("empty span %d in %q", i, spans)
			}
			if i > 0 && spans[i-1].Style == sp.Style {
				t.Errorf("spans %d and %d have the same style: %q", i-1, i, spans)
			}
			all.WriteString(sp.Text)
		}
		if utf8.ValidString(s) && !utf8.ValidString(all.String()) {
			t.Errorf("Parse(%q) made invalid UTF-8", s)
		}
		if !utf8.ValidString(s) {
			return
		}
		// Escaped, any text comes back as itself.
		if got := Parse(html.EscapeString(s)); s != "" && (len(got) != 1 || got[0] != (Span{s, 0})) {
			t.Errorf("Parse(EscapeString(%q)) = %q", s, got)
		}
	})
}
