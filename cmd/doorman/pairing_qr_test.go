package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"rsc.io/qr"

	"github.com/doorman-upnp/doorman/bot"
)

// TestDrawQR reads the drawn code back, two modules a character, and
// compares it module by module with the QR code of the link.
func TestDrawQR(t *testing.T) {
	const link = "https://t.me/doorman_home_bot?start=ABCDE-FGHJK"
	var out bytes.Buffer
	drawQR(&out, link)
	code, err := qr.Encode(link, qr.L)
	if err != nil {
		t.Fatal(err)
	}
	const quiet = 2
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if want := (code.Size + 2*quiet + 1) / 2; len(lines) != want {
		t.Fatalf("drawn %d lines, want %d:\n%s", len(lines), want, out.String())
	}
	// dark reports whether the drawn module at x, y is dark: the quiet
	// zone around the code is light.
	dark := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		return x >= 0 && y >= 0 && x < code.Size && y < code.Size && code.Black(x, y)
	}
	for row, line := range lines {
		cells := []rune(line)
		if len(cells) != code.Size+2*quiet {
			t.Fatalf("line %d is %d wide, want %d", row, len(cells), code.Size+2*quiet)
		}
		for x, c := range cells {
			top, bottom := dark(x, 2*row), dark(x, 2*row+1)
			var want rune
			switch {
			case top && bottom:
				want = ' '
			case top:
				want = '▄'
			case bottom:
				want = '▀'
			default:
				want = '█'
			}
			if 2*row+1 == code.Size+2*quiet {
				// The half line below the quiet zone may be drawn
				// either way: only the top half counts.
				topDark := c == ' ' || c == '▄'
				if topDark != top {
					t.Fatalf("line %d column %d is %q, want its top half dark: %v", row, x, c, top)
				}
				continue
			}
			if c != want {
				t.Fatalf("line %d column %d is %q, want %q", row, x, c, want)
			}
		}
	}
	if width := code.Size + 2*quiet; width > 80 {
		t.Errorf("the code is %d columns wide; it does not fit a terminal of 80", width)
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
}

func TestPairingPrinter(t *testing.T) {
	expires := time.Date(2026, 12, 1, 21, 40, 0, 0, time.UTC)
	var out bytes.Buffer
	pairingPrinter(&out, time.UTC)(bot.PairingCode{Code: "ABCDE-FGHJK", Expires: expires, Link: "https://t.me/doorman_home_bot?start=ABCDE-FGHJK"})
	want := "doorman: pairing code ABCDE-FGHJK: open https://t.me/doorman_home_bot?start=ABCDE-FGHJK on your phone, or send \"/start ABCDE-FGHJK\" to your bot in Telegram, before 21:40; that chat then gets the alerts. In a group, send it there.\n"
	if out.String() != want {
		t.Errorf("printed %q, want %q (and no QR code: a buffer is no terminal)", out.String(), want)
	}
	out.Reset()
	pairingPrinter(&out, time.UTC)(bot.PairingCode{Code: "ABCDE-FGHJK", Expires: expires})
	if want := "doorman: pairing code ABCDE-FGHJK: send \"/start ABCDE-FGHJK\" to your bot in Telegram before 21:40; that chat then gets the alerts.\n"; out.String() != want {
		t.Errorf("without a link printed %q, want %q", out.String(), want)
	}
}
