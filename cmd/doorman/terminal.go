package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// terminal prints share events one readable line each, for doorman without
// Telegram.
type terminal struct {
	mu  sync.Mutex
	w   io.Writer
	loc *time.Location
}

func newTerminal(w io.Writer, loc *time.Location) *terminal {
	if loc == nil {
		loc = time.Local
	}
	return &terminal{w: w, loc: loc}
}

var eventWords = map[approvals.EventKind]string{
	approvals.EventOpen:    "open   ",
	approvals.EventNew:     "NEW    ",
	approvals.EventChanged: "CHANGED",
	approvals.EventGone:    "gone   ",
	approvals.EventClosed:  "CLOSED ",
	approvals.EventRefused: "REFUSED",
}

// print writes one line: time, router, what happened, protocol, external →
// internal, device and description.
func (t *terminal) print(ev approvals.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := ev.Mapping
	line := fmt.Sprintf("%s  %s  %s  %s %d → %s:%d  %s",
		ev.Time.In(t.loc).Format("15:04:05"), watcher.RouterHost(m.Router), eventWords[ev.Kind],
		m.Protocol, m.ExternalPort, printable(m.InternalClient, 64), m.InternalPort, quoted(m.Description))
	if m.RemoteHost != "" {
		line += "  only from " + printable(m.RemoteHost, 64)
	}
	if m.Origin != "" && m.Origin != "upnp" {
		line += "  (" + string(m.Origin) + ")"
	}
	switch {
	case ev.Kind == approvals.EventClosed:
		line += "  blocked: closed again"
	case ev.Kind == approvals.EventRefused:
		line += fmt.Sprintf("  blocked, but the router refused to close it: %v", ev.Err)
	case ev.Rule == storage.RuleTrust:
		line += "  trusted"
	case ev.Rule == storage.RuleBlock:
		line += "  blocked"
	}
	if ev.Previous != nil {
		line += fmt.Sprintf("  (was %s:%d %s)", printable(ev.Previous.InternalClient, 64), ev.Previous.InternalPort, quoted(ev.Previous.Description))
	}
	fmt.Fprintln(t.w, line)
}

// printable keeps a device's text from moving the cursor or faking lines on
// the owner's terminal.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func quoted(desc string) string {
	if desc == "" {
		return "(no description)"
	}
	return "“" + printable(desc, 80) + "”"
}
