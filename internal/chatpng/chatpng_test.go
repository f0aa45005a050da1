package chatpng

import (
	"bytes"
	"image"
	"image/png"
	"strings"
	"testing"
)

var sample = Message{
	HTML:     "🚪 <b>New port share</b> on router 192.168.1.1 (WANIPConnection:2)\n\nDevice: <b>192.168.1.40</b> · private MAC\nMAC: <code>5a:11:22:33:44:55</code>\n⚠️ <b>Risky</b>: Remote Desktop <i>(often attacked)</i>\n\nAllow this share, or block it?",
	Keyboard: [][]string{{"✅ Allow", "⛔ Block"}, {"✅ Allow everything from this device"}},
	Sender:   "Doorman",
	Time:     "09:16",
}

func TestRenderIsDeterministic(t *testing.T) {
	a, err := Render(sample, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Render(sample, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the same message gave two different PNGs")
	}
	img, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w < 400 || w > 480+100 {
		t.Errorf("width %d, want a bubble of at most 480 pixels and the margins", w)
	}
}

func TestScaleDoublesTheSize(t *testing.T) {
	one, err := Draw(sample, Options{})
	if err != nil {
		t.Fatal(err)
	}
	two, err := Draw(sample, Options{Scale: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Hinting rounds each glyph's advance to whole pixels, so text is not
	// exactly twice as wide.
	d1, d2 := one.Bounds().Size(), two.Bounds().Size()
	near := func(a, b int) bool { return a*100 >= b*2*95 && a*100 <= b*2*105 }
	if !near(d2.X, d1.X) || !near(d2.Y, d1.Y) {
		t.Errorf("scale 2 is %v, scale 1 %v", d2, d1)
	}
}

// Lines wrap at spaces within the width; a word wider than a line is cut;
// indentation after a line break stays, a wrapped line starts with a word.
func TestWrap(t *testing.T) {
	r, err := newRenderer(1)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("word ", 60) + "\n    indented\n" + strings.Repeat("x", 200)
	lines := wrap(r.pieces(Parse(text), nil), 300)
	if len(lines) < 6 {
		t.Fatalf("%d lines, want the text wrapped", len(lines))
	}
	indented := false
	for i, l := range lines {
		if l.w > 300 {
			t.Errorf("line %d is %.1f wide, want at most 300", i, l.w)
		}
		if len(l.items) == 0 {
			t.Errorf("line %d is empty", i)
			continue
		}
		first := l.items[0]
		if l.soft && first.kind == ' ' {
			t.Errorf("wrapped line %d starts with a space", i)
		}
		if !l.soft && first.kind == ' ' {
			indented = true
		}
		if last := l.items[len(l.items)-1]; last.kind == ' ' {
			t.Errorf("line %d ends with a space", i)
		}
	}
	if !indented {
		t.Error("the indentation after the line break was lost")
	}
}

// A character the fonts lack is left out or drawn as a picture, never as a
// box: what Missing reports is exactly what is left out.
func TestMissing(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"→ · “quoted” … – • é ß Ω", ""},
		{"✅ ⛔ 🚪 ⚠️ 🔁 ↪️ 👋 🧹 🗑 💤 ❔ 📡 ✓ ✗", ""},
		{"unknown emoji 🎉 🇩🇪 👍🏽 👩‍💻 are tiles", ""},
		{"<b>漢字</b> and <code>ж</code>", "漢字"},
		{"zero\u200bwidth\u200e marks", ""},
	}
	for _, tt := range tests {
		got, err := Missing(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("Missing(%q) = %q, want %q", tt.in, string(got), tt.want)
		}
	}
}

func TestEmojiTakeOnePlace(t *testing.T) {
	r, err := newRenderer(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"⚠️", "👍🏽", "🇩🇪", "👩‍💻", "✅"} {
		ps := r.pieces(Parse(s), nil)
		if len(ps) != 1 || ps[0].kind != 'e' {
			t.Errorf("%q gave %d pieces, want one emoji", s, len(ps))
		}
	}
	if ps := r.pieces(Parse("1️⃣"), nil); len(ps) == 0 || ps[0].kind != 't' {
		t.Errorf("a keycap should keep its digit")
	}
}

// Messages of any shape draw without trouble: empty, one long word, a long
// button text (cut with an ellipsis), many buttons, no keyboard.
func TestDrawShapes(t *testing.T) {
	for _, m := range []Message{
		{},
		{HTML: strings.Repeat("A", 500)},
		{HTML: "x", Keyboard: [][]string{{strings.Repeat("very long button ", 10)}}},
		{HTML: "x", Keyboard: [][]string{{"1", "2", "3", "4", "5", "6", "7", "8"}}},
		{HTML: "no keyboard, a tail", Time: "12:00", Sender: "Doorman"},
		{HTML: strings.Repeat("fill the last line up to the edge ", 14), Time: "12:00"},
	} {
		img, err := Draw(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if img.Bounds().Empty() || img.Bounds().Dx() > 480+2*margin+avatarSize+avatarGap {
			t.Errorf("%q: bounds %v", m.HTML, img.Bounds())
		}
		if !opaque(img) {
			t.Errorf("%q: transparent pixels", m.HTML)
		}
	}
}

func opaque(img *image.RGBA) bool {
	for i := 3; i < len(img.Pix); i += 4 {
		if img.Pix[i] != 0xff {
			return false
		}
	}
	return true
}
