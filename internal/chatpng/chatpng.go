// Package chatpng draws a Telegram message (its HTML text and its inline
// keyboard) as a chat bubble into a PNG, for documentation: the README shows
// an alert exactly as doorman writes it.
//
// It sets the text in the Go fonts (golang.org/x/image/font/gofont), which
// need no files and draw the same everywhere: the same message gives the same
// pixels on every machine with the same version of golang.org/x/image (the
// rasterizer may differ by a level or two of a colour channel between CPU
// architectures). The Go fonts have no emoji; the ones doorman sends are
// drawn as small pictures, other emoji as neutral tiles, and any other
// character the fonts lack (CJK, say) is left out.
package chatpng

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gobolditalic"
	"golang.org/x/image/font/gofont/goitalic"
	"golang.org/x/image/font/gofont/gomedium"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/gofont/gomonobolditalic"
	"golang.org/x/image/font/gofont/gomonoitalic"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
)

// Message is what is drawn: one incoming message.
type Message struct {
	// HTML is the text as the bot sends it with parse_mode HTML.
	HTML string
	// Keyboard holds the texts of the inline buttons, row by row.
	Keyboard [][]string
	// Sender, when set, is shown at the top of the bubble with an avatar
	// beside it, as in a group.
	Sender string
	// Time is shown at the bottom right of the bubble, e.g. "09:16".
	Time string
}

// Options say how big to draw. The zero value draws a bubble at most 480
// pixels wide at scale 1.
type Options struct {
	Width int     // the widest a bubble may be, in pixels at scale 1
	Scale float64 // 2 draws everything twice as big, for sharp high-DPI images
}

// Colours of Telegram's light theme.
var (
	colBackground = rgb(0xcbdcc4)
	colBubble     = rgb(0xffffff)
	colShadow     = rgba(0x000000, 0x1c)
	colText       = rgb(0x000000)
	colCode       = rgb(0x2a6496)
	colSender     = rgb(0x3a8cd0)
	colTime       = rgb(0x9aa6b0)
	colButton     = rgba(0x2d4a32, 0x55)
	colButtonText = rgb(0xffffff)
	colAvatar     = rgb(0x5fa6e0)
)

// Sizes in pixels at scale 1.
const (
	textSize    = 15.0
	lineHeight  = 20.0
	senderSize  = 14.5
	timeSize    = 12.0
	buttonSize  = 14.0
	margin      = 14.0
	avatarSize  = 36.0
	avatarGap   = 8.0
	padX        = 12.0
	padTop      = 7.0
	padBottom   = 7.0
	radius      = 14.0
	buttonH     = 38.0
	buttonGap   = 4.0
	buttonR     = 10.0
	emojiScale  = 1.2 // an emoji's side, in text sizes
	timeGap     = 10.0
	timeLineAdd = 13.0
)

var parsed = sync.OnceValues(func() (map[string]*sfnt.Font, error) {
	out := map[string]*sfnt.Font{}
	for name, ttf := range map[string][]byte{
		"regular": goregular.TTF, "bold": gobold.TTF, "italic": goitalic.TTF, "bolditalic": gobolditalic.TTF,
		"mono": gomono.TTF, "monobold": gomonobold.TTF, "monoitalic": gomonoitalic.TTF, "monobolditalic": gomonobolditalic.TTF,
		"medium": gomedium.TTF,
	} {
		f, err := opentype.Parse(ttf)
		if err != nil {
			return nil, fmt.Errorf("chatpng: the Go font %s: %w", name, err)
		}
		out[name] = f
	}
	return out, nil
})

func fontName(s Style) string {
	name := ""
	if s&Code != 0 {
		name = "mono"
	}
	if s&Bold != 0 {
		name += "bold"
	}
	if s&Italic != 0 {
		name += "italic"
	}
	if name == "" {
		name = "regular"
	}
	return name
}

// typeface is a font at one size, with what layout needs of it.
type typeface struct {
	f    *sfnt.Font
	face font.Face
	buf  sfnt.Buffer
	asc  float64
	desc float64
}

func (t *typeface) has(r rune) bool {
	i, err := t.f.GlyphIndex(&t.buf, r)
	return err == nil && i != 0
}

func (t *typeface) width(s string) float64 {
	return fix(font.MeasureString(t.face, s))
}

func fix(v fixed.Int26_6) float64 { return float64(v) / 64 }

func toFix(v float64) fixed.Int26_6 { return fixed.Int26_6(math.Round(v * 64)) }

// renderer holds the faces of one drawing.
type renderer struct {
	scale float64
	faces map[string]*typeface
}

func newRenderer(scale float64) (*renderer, error) {
	fonts, err := parsed()
	if err != nil {
		return nil, err
	}
	r := &renderer{scale: scale, faces: map[string]*typeface{}}
	for name, f := range fonts {
		if name == "medium" {
			continue
		}
		if r.faces[name], err = r.newFace(f, textSize); err != nil {
			return nil, err
		}
	}
	for _, extra := range []struct {
		name, font string
		size       float64
	}{{"button", "medium", buttonSize}, {"sender", "medium", senderSize}, {"time", "regular", timeSize}} {
		if r.faces[extra.name], err = r.newFace(fonts[extra.font], extra.size); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *renderer) newFace(f *sfnt.Font, size float64) (*typeface, error) {
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size * r.scale, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, err
	}
	m := face.Metrics()
	return &typeface{f: f, face: face, asc: fix(m.Ascent), desc: fix(m.Descent)}, nil
}

func (r *renderer) px(v float64) float64 { return v * r.scale }

// piece is a unit of layout: a word (or part of one) in one style, an
// emoji, a space or a line break.
type piece struct {
	kind  byte // 't' text, 'e' emoji, ' ' space, '\n' break
	text  string
	style Style
	face  *typeface
	art   emojiArt
	w     float64
}

// pieces cuts spans into pieces, measured with faces; face overrides the
// face of the style (for buttons).
func (r *renderer) pieces(spans []Span, face *typeface) []piece {
	var out []piece
	for _, sp := range spans {
		tf := face
		if tf == nil {
			tf = r.faces[fontName(sp.Style)]
		}
		var word strings.Builder
		flush := func() {
			if word.Len() > 0 {
				out = append(out, piece{kind: 't', text: word.String(), style: sp.Style, face: tf, w: tf.width(word.String())})
				word.Reset()
			}
		}
		s := sp.Text
		for i := 0; i < len(s); {
			c, kind, n := r.next(s[i:], tf)
			switch kind {
			case '\n':
				flush()
				out = append(out, piece{kind: '\n'})
			case ' ':
				flush()
				out = append(out, piece{kind: ' ', w: tf.width(" "), face: tf})
			case 'e':
				flush()
				art, ok := emojis[c]
				if !ok {
					art = unknownEmoji
				}
				out = append(out, piece{kind: 'e', art: art, face: tf, w: r.px(textSize*emojiScale + 2)})
			case 't':
				word.WriteRune(c)
			}
			i += n
		}
		flush()
	}
	return out
}

// next reads the first character of s and says what it is: a line break
// ('\n'), a space (' '), an emoji ('e', n covers its modifiers), text in
// face tf ('t'), or nothing to draw (0: invisible, or not in the font).
func (r *renderer) next(s string, tf *typeface) (c rune, kind byte, n int) {
	c, n = utf8.DecodeRuneInString(s)
	switch {
	case c == '\n':
		return c, '\n', n
	case c == ' ' || c == '\t':
		return c, ' ', n
	case invisible(c):
		return c, 0, n
	case r.isEmoji(c, s[n:], tf):
		return c, 'e', n + emojiTail(c, s[n:])
	case tf.has(c):
		return c, 't', n
	}
	return c, 0, n
}

// isEmoji says whether c, followed by rest, is drawn as an emoji: it has a
// picture here, or it is a pictograph the font lacks or that asks for its
// emoji form (U+FE0F).
func (r *renderer) isEmoji(c rune, rest string, tf *typeface) bool {
	if _, ok := emojis[c]; ok {
		return true
	}
	next, _ := utf8.DecodeRuneInString(rest)
	if next == 0xfe0f && !(c >= '0' && c <= '9') && c != '#' && c != '*' {
		return true
	}
	return isEmojiBase(c) && !tf.has(c)
}

func regional(r rune) bool { return r >= 0x1f1e6 && r <= 0x1f1ff }

// emojiTail is the length of what belongs to an emoji after its first
// rune: modifiers, and further emoji joined with U+200D.
func emojiTail(base rune, s string) int {
	n := 0
	for n < len(s) {
		c, size := utf8.DecodeRuneInString(s[n:])
		switch {
		case isEmojiTail(c):
			n += size
		case n == 0 && regional(base) && regional(c):
			// The second letter of a flag.
			n += size
		case c == 0x200d:
			n += size
			if n < len(s) {
				_, size = utf8.DecodeRuneInString(s[n:])
				n += size
			}
		default:
			return n
		}
	}
	return n
}

// line is a laid-out line: pieces at their x offsets.
type line struct {
	items []placed
	w     float64
	soft  bool // begun by wrapping, not by a line break in the text
}

type placed struct {
	piece
	x float64
}

// wrap lays pieces out in lines at most maxW wide, breaking at spaces, and
// inside a word only when the word alone is wider than a line.
func wrap(ps []piece, maxW float64) []line {
	lines := []line{{}}
	cur := &lines[0]
	newLine := func(soft bool) {
		lines = append(lines, line{soft: soft})
		cur = &lines[len(lines)-1]
	}
	put := func(p piece) {
		cur.items = append(cur.items, placed{p, cur.w})
		cur.w += p.w
	}
	for i := 0; i < len(ps); {
		switch ps[i].kind {
		case '\n':
			newLine(false)
			i++
			continue
		case ' ':
			// Spaces that begin the text or follow a line break indent,
			// as in Telegram; a wrapped line starts with its next word.
			if len(cur.items) > 0 || !cur.soft {
				put(ps[i])
			}
			i++
			continue
		}
		// A word: pieces up to the next space or break.
		j := i
		w := 0.0
		for j < len(ps) && ps[j].kind != ' ' && ps[j].kind != '\n' {
			w += ps[j].w
			j++
		}
		if cur.w+w > maxW && len(cur.items) > 0 {
			trimSpace(cur)
			newLine(true)
		}
		for _, p := range ps[i:j] {
			if cur.w+p.w > maxW && p.kind == 't' {
				// Only a word wider than the whole line gets here.
				for _, c := range p.text {
					part := piece{kind: 't', text: string(c), style: p.style, face: p.face, w: p.face.width(string(c))}
					if cur.w+part.w > maxW && len(cur.items) > 0 {
						newLine(true)
					}
					put(part)
				}
				continue
			}
			if cur.w+p.w > maxW && len(cur.items) > 0 {
				newLine(true)
			}
			put(p)
		}
		i = j
	}
	for i := range lines {
		trimSpace(&lines[i])
	}
	return lines
}

func trimSpace(l *line) {
	for len(l.items) > 0 && l.items[len(l.items)-1].kind == ' ' {
		l.w -= l.items[len(l.items)-1].w
		l.items = l.items[:len(l.items)-1]
	}
}

// drawLine draws l with its top left at (x, top) in a line of height lh.
func (r *renderer) drawLine(dst *image.RGBA, l line, x, top, lh float64, text, code color.Color) {
	for _, it := range l.items {
		switch it.kind {
		case 't':
			c := text
			if it.style&Code != 0 {
				c = code
			}
			r.drawText(dst, it.face, it.text, x+it.x, r.baseline(it.face, top, lh), c)
		case 'e':
			s := r.px(textSize * emojiScale)
			ex := x + it.x + r.px(1)
			ey := math.Round(top + (lh-s)/2)
			it.art.draw(dst, ex, ey, s)
			if it.art.letter != "" {
				tf := r.faces["bold"]
				w := tf.width(it.art.letter)
				r.drawText(dst, tf, it.art.letter, ex+(s-w)/2, ey+s/2+(tf.asc-tf.desc)/2-r.px(1), rgb(0xffffff))
			}
		}
	}
}

// baseline places text of face tf in a line of height lh at top.
func (r *renderer) baseline(tf *typeface, top, lh float64) float64 {
	return math.Round(top + (lh-(tf.asc+tf.desc))/2 + tf.asc)
}

func (r *renderer) drawText(dst *image.RGBA, tf *typeface, s string, x, baseline float64, c color.Color) {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(c), Face: tf.face, Dot: fixed.Point26_6{X: toFix(x), Y: toFix(baseline)}}
	d.DrawString(s)
}

// Draw draws m.
func Draw(m Message, o Options) (*image.RGBA, error) {
	if o.Scale <= 0 {
		o.Scale = 1
	}
	if o.Width <= 0 {
		o.Width = 480
	}
	r, err := newRenderer(o.Scale)
	if err != nil {
		return nil, err
	}
	px := r.px
	maxBubble := px(float64(o.Width))
	maxText := maxBubble - 2*px(padX)

	lines := wrap(r.pieces(Parse(m.HTML), nil), maxText)
	textW := 0.0
	for _, l := range lines {
		textW = math.Max(textW, l.w)
	}
	sender := r.faces["sender"]
	if m.Sender != "" {
		textW = math.Max(textW, sender.width(m.Sender))
	}
	timeFace := r.faces["time"]
	timeW := 0.0
	if m.Time != "" {
		timeW = timeFace.width(m.Time)
	}
	// The time sits at the end of the last line when there is room,
	// else on a line of its own.
	last := lines[len(lines)-1].w
	timeInline := m.Time == "" || last+px(timeGap)+timeW <= maxText
	if timeInline {
		textW = math.Max(textW, last+px(timeGap)+timeW)
	}

	// Buttons: each row is as wide as the bubble, its buttons share it.
	type button struct{ l line }
	var rows [][]button
	minKeyboard := 0.0
	for _, row := range m.Keyboard {
		var bs []button
		need := 0.0
		for _, text := range row {
			ls := wrap(r.pieces([]Span{{Text: strings.ReplaceAll(text, "\n", " ")}}, r.faces["button"]), math.MaxFloat64)
			bs = append(bs, button{ls[0]})
			need = math.Max(need, ls[0].w+2*px(padX))
		}
		rows = append(rows, bs)
		minKeyboard = math.Max(minKeyboard, need*float64(len(row))+px(buttonGap)*float64(len(row)-1))
	}
	bubbleW := math.Ceil(math.Min(maxBubble, math.Max(textW+2*px(padX), minKeyboard)))
	lh := math.Round(px(lineHeight))
	bubbleH := px(padTop) + lh*float64(len(lines)) + px(padBottom)
	if m.Sender != "" {
		bubbleH += lh
	}
	if !timeInline {
		bubbleH += px(timeLineAdd)
	}
	bubbleH = math.Round(bubbleH)
	keyboardH := 0.0
	if len(rows) > 0 {
		keyboardH = float64(len(rows)) * (px(buttonGap) + math.Round(px(buttonH)))
	}

	left := px(margin)
	if m.Sender != "" {
		left += px(avatarSize + avatarGap)
	}
	w := int(math.Ceil(left + bubbleW + px(margin)))
	h := int(math.Ceil(px(margin) + bubbleH + keyboardH + px(margin)))
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(dst.Pix); i += 4 {
		dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = colBackground.R, colBackground.G, colBackground.B, 0xff
	}

	// The bubble, with a soft edge below like Telegram's.
	top := px(margin)
	rad := px(radius)
	tail := len(rows) == 0
	bl := rad
	if tail {
		bl = 0
	}
	var shadow path
	shadow.roundRect(left, top+px(1), bubbleW, bubbleH, rad, rad, rad, bl)
	fill(dst, colShadow, &shadow)
	var bubble path
	bubble.roundRect(left, top, bubbleW, bubbleH, rad, rad, rad, bl)
	if tail {
		b := top + bubbleH
		bubble.moveTo(left+px(1), b-px(16))
		bubble.quadTo(left+px(1), b-px(2), left-px(7), b)
		bubble.lineTo(left+px(1), b)
		bubble.lineTo(left+px(1), b-px(16))
	}
	fill(dst, colBubble, &bubble)

	y := top + px(padTop)
	x := left + px(padX)
	if m.Sender != "" {
		r.drawText(dst, sender, m.Sender, x, r.baseline(sender, y, lh), colSender)
		y += lh
	}
	for _, l := range lines {
		r.drawLine(dst, l, x, y, lh, colText, colCode)
		y += lh
	}
	if m.Time != "" {
		tx := left + bubbleW - px(padX) - timeW
		var base float64
		if timeInline {
			base = r.baseline(r.faces["regular"], y-lh, lh) + px(2)
		} else {
			base = math.Round(top + bubbleH - px(padBottom) - timeFace.desc)
		}
		r.drawText(dst, timeFace, m.Time, tx, base, colTime)
	}

	// The keyboard.
	by := top + bubbleH
	bh := math.Round(px(buttonH))
	for _, row := range rows {
		by += px(buttonGap)
		n := float64(len(row))
		bw := (bubbleW - px(buttonGap)*(n-1)) / n
		for i, b := range row {
			bx := left + float64(i)*(bw+px(buttonGap))
			var p path
			br := px(buttonR)
			p.roundRect(bx, by, bw, bh, br, br, br, br)
			fill(dst, colButton, &p)
			l := b.l
			if l.w > bw-2*px(padX) {
				l = ellipsize(r, l, bw-2*px(padX))
			}
			r.drawLine(dst, l, bx+(bw-l.w)/2, by, bh, colButtonText, colButtonText)
		}
		by += bh
	}

	if m.Sender != "" {
		as := px(avatarSize)
		ax, ay := px(margin), top+bubbleH+keyboardH-as
		var p path
		p.circle(ax+as/2, ay+as/2, as/2)
		fill(dst, colAvatar, &p)
		initial, _ := utf8.DecodeRuneInString(m.Sender)
		tf := r.faces["sender"]
		s := string(initial)
		r.drawText(dst, tf, s, ax+(as-tf.width(s))/2, math.Round(ay+as/2+(tf.asc-tf.desc)/2), rgb(0xffffff))
	}
	return dst, nil
}

// ellipsize cuts l to fit w, ending in "…", as Telegram does with long
// button texts.
func ellipsize(r *renderer, l line, w float64) line {
	tf := r.faces["button"]
	dots := piece{kind: 't', text: "…", face: tf, w: tf.width("…")}
	var out line
	for _, it := range l.items {
		if it.kind == 't' {
			for _, c := range it.text {
				cw := tf.width(string(c))
				if out.w+cw+dots.w > w {
					out.items = append(out.items, placed{dots, out.w})
					out.w += dots.w
					return out
				}
				out.items = append(out.items, placed{piece{kind: 't', text: string(c), face: tf, w: cw}, out.w})
				out.w += cw
			}
			continue
		}
		if out.w+it.w+dots.w > w {
			break
		}
		out.items = append(out.items, placed{it.piece, out.w})
		out.w += it.w
	}
	out.items = append(out.items, placed{dots, out.w})
	out.w += dots.w
	return out
}

// Render draws m and encodes it as PNG.
func Render(m Message, o Options) ([]byte, error) {
	img, err := Draw(m, o)
	if err != nil {
		return nil, err
	}
	return Encode(img)
}

// Encode encodes img as PNG, compressed as much as the encoder can.
func Encode(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Missing lists the characters of the message html that would be left out
// of the picture: neither the Go fonts nor the emoji pictures have them.
func Missing(html string) ([]rune, error) {
	r, err := newRenderer(1)
	if err != nil {
		return nil, err
	}
	var out []rune
	seen := map[rune]bool{}
	for _, sp := range Parse(html) {
		tf := r.faces[fontName(sp.Style)]
		for s := sp.Text; s != ""; {
			c, kind, n := r.next(s, tf)
			if kind == 0 && !invisible(c) && !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
			s = s[n:]
		}
	}
	return out, nil
}
