package chatpng

import (
	"image"
	"image/color"
	"math"

	"golang.org/x/image/vector"
)

// path is a filled outline in image coordinates. It records its segments
// and rasterizes them in a rasterizer just the size of their bounds.
type path struct {
	segs                   []seg
	minX, minY, maxX, maxY float64
}

type seg struct {
	op  byte // 'M', 'L', 'Q', 'C'
	pts [6]float64
}

func (p *path) add(op byte, pts ...float64) {
	s := seg{op: op}
	copy(s.pts[:], pts)
	if len(p.segs) == 0 {
		p.minX, p.minY, p.maxX, p.maxY = pts[0], pts[1], pts[0], pts[1]
	}
	for i := 0; i+1 < len(pts); i += 2 {
		p.minX, p.maxX = math.Min(p.minX, pts[i]), math.Max(p.maxX, pts[i])
		p.minY, p.maxY = math.Min(p.minY, pts[i+1]), math.Max(p.maxY, pts[i+1])
	}
	p.segs = append(p.segs, s)
}

func (p *path) moveTo(x, y float64)                   { p.add('M', x, y) }
func (p *path) lineTo(x, y float64)                   { p.add('L', x, y) }
func (p *path) quadTo(bx, by, cx, cy float64)         { p.add('Q', bx, by, cx, cy) }
func (p *path) cubeTo(bx, by, cx, cy, dx, dy float64) { p.add('C', bx, by, cx, cy, dx, dy) }

// kappa places the control points of a cubic Bézier quarter circle.
const kappa = 0.5522847498

// roundRect adds a rectangle with corner radii tl, tr, br, bl, clockwise.
func (p *path) roundRect(x, y, w, h, tl, tr, br, bl float64) {
	k := 1 - kappa
	p.moveTo(x+tl, y)
	p.lineTo(x+w-tr, y)
	if tr > 0 {
		p.cubeTo(x+w-tr*k, y, x+w, y+tr*k, x+w, y+tr)
	}
	p.lineTo(x+w, y+h-br)
	if br > 0 {
		p.cubeTo(x+w, y+h-br*k, x+w-br*k, y+h, x+w-br, y+h)
	}
	p.lineTo(x+bl, y+h)
	if bl > 0 {
		p.cubeTo(x+bl*k, y+h, x, y+h-bl*k, x, y+h-bl)
	}
	p.lineTo(x, y+tl)
	if tl > 0 {
		p.cubeTo(x, y+tl*k, x+tl*k, y, x+tl, y)
	}
}

// circle adds a circle, clockwise.
func (p *path) circle(cx, cy, r float64) {
	k := r * kappa
	p.moveTo(cx, cy-r)
	p.cubeTo(cx+k, cy-r, cx+r, cy-k, cx+r, cy)
	p.cubeTo(cx+r, cy+k, cx+k, cy+r, cx, cy+r)
	p.cubeTo(cx-k, cy+r, cx-r, cy+k, cx-r, cy)
	p.cubeTo(cx-r, cy-k, cx-k, cy-r, cx, cy-r)
}

// polygon adds a closed polygon through pts (x, y pairs).
func (p *path) polygon(pts ...float64) {
	p.moveTo(pts[0], pts[1])
	for i := 2; i+1 < len(pts); i += 2 {
		p.lineTo(pts[i], pts[i+1])
	}
	p.lineTo(pts[0], pts[1])
}

// fill paints p in c over dst.
func fill(dst *image.RGBA, c color.Color, p *path) {
	if len(p.segs) == 0 {
		return
	}
	r := image.Rect(int(math.Floor(p.minX)), int(math.Floor(p.minY)), int(math.Ceil(p.maxX)), int(math.Ceil(p.maxY))).Intersect(dst.Bounds())
	if r.Empty() {
		return
	}
	ox, oy := float64(r.Min.X), float64(r.Min.Y)
	z := vector.NewRasterizer(r.Dx(), r.Dy())
	f := func(i int, s seg) float32 {
		if i%2 == 0 {
			return float32(s.pts[i] - ox)
		}
		return float32(s.pts[i] - oy)
	}
	for _, s := range p.segs {
		switch s.op {
		case 'M':
			z.ClosePath()
			z.MoveTo(f(0, s), f(1, s))
		case 'L':
			z.LineTo(f(0, s), f(1, s))
		case 'Q':
			z.QuadTo(f(0, s), f(1, s), f(2, s), f(3, s))
		case 'C':
			z.CubeTo(f(0, s), f(1, s), f(2, s), f(3, s), f(4, s), f(5, s))
		}
	}
	z.ClosePath()
	z.Draw(dst, r, image.NewUniform(c), image.Point{})
}

// stroke paints a straight line of width w from (x1, y1) to (x2, y2) with
// round ends.
func stroke(dst *image.RGBA, c color.Color, x1, y1, x2, y2, w float64) {
	dx, dy := x2-x1, y2-y1
	l := math.Hypot(dx, dy)
	if l == 0 {
		return
	}
	nx, ny := -dy/l*w/2, dx/l*w/2
	var p path
	p.polygon(x1+nx, y1+ny, x2+nx, y2+ny, x2-nx, y2-ny, x1-nx, y1-ny)
	fill(dst, c, &p)
	for _, e := range [][2]float64{{x1, y1}, {x2, y2}} {
		var cap path
		cap.circle(e[0], e[1], w/2)
		fill(dst, c, &cap)
	}
}

func rgb(v uint32) color.NRGBA {
	return color.NRGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 0xff}
}

func rgba(v uint32, a uint8) color.NRGBA {
	c := rgb(v)
	c.A = a
	return c
}
