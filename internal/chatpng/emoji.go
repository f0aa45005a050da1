package chatpng

import (
	"image"
	"unicode"
)

// The Go fonts have no emoji. Those doorman sends are drawn as simple
// pictures in the spirit of the real ones; any other emoji is a neutral
// grey tile, never a box with a question mark.

// emojiArt draws one emoji into the square at (x, y) with side s. The
// letter, if any, is drawn on top by the caller, centred, in white.
type emojiArt struct {
	draw   func(dst *image.RGBA, x, y, s float64)
	letter string
}

var emojis = map[rune]emojiArt{
	'✅': {draw: drawCheck},
	'⛔': {draw: drawNoEntry},
	'🚪': {draw: drawDoor},
	'⚠': {draw: drawWarning},
	'🔁': {draw: drawRepeat},
	'↪': {draw: drawHookArrow},
	'👋': {draw: tile(0xf7c545, 0.5)},
	'❔': {draw: tile(0xa9b4bf, 0.5), letter: "?"},
	'❓': {draw: tile(0xe0434b, 0.5), letter: "?"},
	'💤': {draw: tile(0x5b8def, 0.22), letter: "z"},
	'🗑': {draw: drawBin},
	'🧹': {draw: tile(0xd9a441, 0.22)},
	'📡': {draw: tile(0x8d99a6, 0.5)},
	'🔒': {draw: tile(0xf2b632, 0.22)},
	'🔓': {draw: tile(0xf2b632, 0.22)},
	'✓': {draw: drawTick},
	'✗': {draw: drawCross},
}

// unknownEmoji stands for emoji with no picture here.
var unknownEmoji = emojiArt{draw: tile(0xc9d1d9, 0.22)}

// isEmojiBase says whether r starts an emoji: it has a picture here, or it
// is in a block of emoji and pictographs the Go fonts do not cover.
func isEmojiBase(r rune) bool {
	if _, ok := emojis[r]; ok {
		return true
	}
	switch {
	case r >= 0x1f000 && r <= 0x1faff, // pictographs, emoticons, transport, …
		r >= 0x2600 && r <= 0x27bf,   // miscellaneous symbols, dingbats
		r >= 0x2b00 && r <= 0x2bff,   // arrows and shapes used as emoji
		r >= 0x1f1e6 && r <= 0x1f1ff: // regional indicators (flags)
		return true
	}
	return false
}

// isEmojiTail says whether r belongs to the emoji before it: variation
// selectors, skin tones, the keycap mark, tags.
func isEmojiTail(r rune) bool {
	return r == 0xfe0f || r == 0xfe0e || r == 0x20e3 ||
		(r >= 0x1f3fb && r <= 0x1f3ff) || (r >= 0xe0020 && r <= 0xe007f)
}

// invisible are characters that take no room and have no glyph: joiners,
// marks of direction, variation selectors on their own.
func invisible(r rune) bool {
	return r == 0x200b || r == 0x200c || r == 0x200d || r == 0x2060 || r == 0xfeff ||
		unicode.Is(unicode.Variation_Selector, r) || unicode.Is(unicode.Bidi_Control, r)
}

// tile is a rounded square (radius as a fraction of the side; 0.5 is a
// circle) in one colour.
func tile(c uint32, radius float64) func(dst *image.RGBA, x, y, s float64) {
	return func(dst *image.RGBA, x, y, s float64) {
		var p path
		r := s * radius
		p.roundRect(x, y, s, s, r, r, r, r)
		fill(dst, rgb(c), &p)
	}
}

func drawCheck(dst *image.RGBA, x, y, s float64) {
	tile(0x3fb950, 0.22)(dst, x, y, s)
	w := s * 0.13
	white := rgb(0xffffff)
	stroke(dst, white, x+s*0.25, y+s*0.53, x+s*0.43, y+s*0.71, w)
	stroke(dst, white, x+s*0.43, y+s*0.71, x+s*0.76, y+s*0.31, w)
}

func drawNoEntry(dst *image.RGBA, x, y, s float64) {
	var p path
	p.circle(x+s/2, y+s/2, s*0.47)
	fill(dst, rgb(0xe0343f), &p)
	var bar path
	bar.roundRect(x+s*0.2, y+s*0.42, s*0.6, s*0.16, s*0.03, s*0.03, s*0.03, s*0.03)
	fill(dst, rgb(0xffffff), &bar)
}

func drawDoor(dst *image.RGBA, x, y, s float64) {
	var frame path
	frame.roundRect(x+s*0.16, y+s*0.04, s*0.68, s*0.92, s*0.06, s*0.06, 0, 0)
	fill(dst, rgb(0x6d4325), &frame)
	var door path
	door.roundRect(x+s*0.24, y+s*0.12, s*0.52, s*0.84, s*0.03, s*0.03, 0, 0)
	fill(dst, rgb(0xb0733f), &door)
	for _, py := range []float64{0.18, 0.56} {
		var panel path
		panel.roundRect(x+s*0.32, y+s*py, s*0.36, s*0.3, s*0.02, s*0.02, s*0.02, s*0.02)
		fill(dst, rgb(0x9a6232), &panel)
	}
	var knob path
	knob.circle(x+s*0.66, y+s*0.55, s*0.055)
	fill(dst, rgb(0xf2c14e), &knob)
}

func drawWarning(dst *image.RGBA, x, y, s float64) {
	var p path
	// A triangle with rounded corners: a polygon with the corners cut and
	// curves across the cuts.
	top, left, right, bottom := x+s*0.5, x+s*0.02, x+s*0.98, y+s*0.92
	ty := y + s*0.07
	c := s * 0.07
	p.moveTo(top-c*0.6, ty+c)
	p.quadTo(top, ty-c*0.2, top+c*0.6, ty+c)
	p.lineTo(right-c*0.5, bottom-c)
	p.quadTo(right+c*0.3, bottom, right-c*1.2, bottom)
	p.lineTo(left+c*1.2, bottom)
	p.quadTo(left-c*0.3, bottom, left+c*0.5, bottom-c)
	p.lineTo(top-c*0.6, ty+c)
	fill(dst, rgb(0xf5b82e), &p)
	dark := rgb(0x33291a)
	stroke(dst, dark, x+s*0.5, y+s*0.36, x+s*0.5, y+s*0.62, s*0.1)
	var dot path
	dot.circle(x+s*0.5, y+s*0.77, s*0.06)
	fill(dst, dark, &dot)
}

func drawRepeat(dst *image.RGBA, x, y, s float64) {
	tile(0x3b8eea, 0.22)(dst, x, y, s)
	white := rgb(0xffffff)
	w := s * 0.09
	// Two arrows running round a loop.
	stroke(dst, white, x+s*0.24, y+s*0.56, x+s*0.24, y+s*0.36, w)
	stroke(dst, white, x+s*0.24, y+s*0.36, x+s*0.7, y+s*0.36, w)
	var head path
	head.polygon(x+s*0.66, y+s*0.24, x+s*0.82, y+s*0.36, x+s*0.66, y+s*0.48)
	fill(dst, white, &head)
	stroke(dst, white, x+s*0.76, y+s*0.44, x+s*0.76, y+s*0.64, w)
	stroke(dst, white, x+s*0.76, y+s*0.64, x+s*0.3, y+s*0.64, w)
	var head2 path
	head2.polygon(x+s*0.34, y+s*0.52, x+s*0.18, y+s*0.64, x+s*0.34, y+s*0.76)
	fill(dst, white, &head2)
}

func drawHookArrow(dst *image.RGBA, x, y, s float64) {
	tile(0x3b8eea, 0.22)(dst, x, y, s)
	white := rgb(0xffffff)
	w := s * 0.1
	stroke(dst, white, x+s*0.28, y+s*0.3, x+s*0.28, y+s*0.6, w)
	stroke(dst, white, x+s*0.28, y+s*0.6, x+s*0.62, y+s*0.6, w)
	var head path
	head.polygon(x+s*0.58, y+s*0.44, x+s*0.8, y+s*0.6, x+s*0.58, y+s*0.76)
	fill(dst, white, &head)
}

func drawBin(dst *image.RGBA, x, y, s float64) {
	grey := rgb(0x7d8793)
	var lid path
	lid.roundRect(x+s*0.18, y+s*0.14, s*0.64, s*0.1, s*0.03, s*0.03, s*0.03, s*0.03)
	fill(dst, grey, &lid)
	var handle path
	handle.roundRect(x+s*0.4, y+s*0.06, s*0.2, s*0.1, s*0.03, s*0.03, 0, 0)
	fill(dst, grey, &handle)
	var can path
	can.polygon(x+s*0.24, y+s*0.28, x+s*0.76, y+s*0.28, x+s*0.7, y+s*0.94, x+s*0.3, y+s*0.94)
	fill(dst, grey, &can)
}

// drawTick and drawCross stand in for ✓ and ✗, which are text symbols,
// not emoji, but missing from the Go fonts too.
func drawTick(dst *image.RGBA, x, y, s float64) {
	c := rgb(0x2da44e)
	w := s * 0.12
	stroke(dst, c, x+s*0.2, y+s*0.55, x+s*0.4, y+s*0.75, w)
	stroke(dst, c, x+s*0.4, y+s*0.75, x+s*0.8, y+s*0.25, w)
}

func drawCross(dst *image.RGBA, x, y, s float64) {
	c := rgb(0xcf222e)
	w := s * 0.12
	stroke(dst, c, x+s*0.25, y+s*0.25, x+s*0.75, y+s*0.75, w)
	stroke(dst, c, x+s*0.75, y+s*0.25, x+s*0.25, y+s*0.75, w)
}
