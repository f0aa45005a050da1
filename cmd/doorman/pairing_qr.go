package main

import (
	"io"
	"os"

	"github.com/mdp/qrterminal/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is an interactive terminal, where a QR code
// can be scanned off the screen; a log file or journald gets none.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// drawQR draws link as a QR code a phone can scan, two modules a character
// so that it fits an 80-column terminal. Dark on light: the quiet zone is
// drawn, so it scans on dark terminals too.
func drawQR(w io.Writer, link string) {
	qrterminal.GenerateWithConfig(link, qrterminal.Config{
		Level:          qrterminal.L,
		Writer:         w,
		HalfBlocks:     true,
		BlackChar:      qrterminal.BLACK_BLACK,
		BlackWhiteChar: qrterminal.BLACK_WHITE,
		WhiteChar:      qrterminal.WHITE_WHITE,
		WhiteBlackChar: qrterminal.WHITE_BLACK,
		QuietZone:      2,
	})
}
