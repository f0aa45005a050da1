package bot

import (
	"fmt"
	"html"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

// This file words what approvals records as typed outcomes: the notes under
// alerts and digest entries, and the notices of the outbox.

// truncate shortens s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// refusalText explains a refused delete to the owner, as HTML: what happened
// and what they can change on the router. Routers that refuse are set up to
// let each device close only its own shares.
func refusalText(code int) string {
	why := "The router refused to close it"
	if code != 0 {
		why += fmt.Sprintf(" (UPnP error %d)", code)
	}
	return why + ", so it is still open. Routers in a secure mode let each device close only its own shares. " +
		"OpenWrt or miniupnpd: turn secure mode off (<code>option secure_mode '0'</code> in /etc/config/upnpd, or <code>secure_mode=no</code>) so doorman may remove other devices' shares. " +
		"FRITZ!Box: withdraw the device's permission to open ports (Internet → Permit Access → the device → uncheck \"Permit independent port sharing\"). " +
		"Then press Block again."
}

// unreachableText says that the router could not be reached, as HTML;
// retry is what the owner can do about it.
func unreachableText(errText, retry string) string {
	return "Could not reach the router to close it: " + html.EscapeString(errText) + retry
}

// Retry hints after an unreachable router, by where the note stands.
const (
	retryBlock = ". The share may still be open; press Block again."
	retryClose = ". Try again."
)

// failureNote words why a share was not closed (HTML), "" for a note that
// says something else.
func failureNote(n storage.Note, retry string) string {
	switch n.Kind {
	case storage.NoteRefused:
		return refusalText(n.UPnPCode)
	case storage.NoteUnreachable:
		return unreachableText(n.Error, retry)
	case storage.NoteSeeBelow:
		return "Not closed; see the message below."
	}
	return ""
}

// supersededNote words why a question no longer applies, as plain text.
func supersededNote(n storage.Note) string {
	switch n.Kind {
	case storage.NoteChanged:
		return "The share changed; see the newer message."
	case storage.NoteReopenedByOther:
		return "The share closed, and the port was opened again by another device or app; see the newer message."
	case storage.NoteAskedAgain:
		return "Asked again in the newly paired chat."
	case storage.NoteBusyDevice:
		return "The device opened many shares; one message about the whole device asks below."
	case storage.NoteText:
		return n.Text
	}
	return ""
}

// pendingNote words the note of an alert that still waits for an answer, as
// HTML. Text notes of older versions were HTML here.
func pendingNote(n storage.Note) string {
	if n.Kind == storage.NoteText {
		return n.Text
	}
	return failureNote(n, retryBlock)
}

// allowedNote words the note of an allowed alert, as plain text; a note
// left from before the decision (a failed Block) says nothing any more.
func allowedNote(n storage.Note) string {
	switch n.Kind {
	case storage.NoteTrustedDevice:
		return "Everything this device opens is trusted, except what you blocked."
	case storage.NoteText:
		return n.Text
	}
	return ""
}

// digestNote words the note of a digest entry, as HTML.
func digestNote(n storage.Note) string {
	if n.Kind == storage.NoteText {
		return n.Text
	}
	return failureNote(n, retryClose)
}

// renderNotice words a notice, as HTML.
func renderNotice(n storage.Notice, loc *time.Location) string {
	m := n.Mapping
	switch n.Kind {
	case storage.NoticeNotClosed, storage.NoticeStaleNotClosed:
		retry := retryBlock
		if n.Kind == storage.NoticeStaleNotClosed {
			retry = retryClose
		}
		return "⚠️ <b>Not closed</b>: " + esc(m.InternalClient, 64) + fmt.Sprintf(" %s %d → %d. ", m.Protocol, m.ExternalPort, m.InternalPort) + failureNote(n.Note, retry)
	}
	what := fmt.Sprintf("%s reopened %s %d → %d", esc(m.InternalClient, 64), m.Protocol, m.ExternalPort, m.InternalPort)
	if m.Description != "" {
		what += " (" + esc(m.Description, 80) + ")"
	}
	var b string
	switch {
	case n.Kind == storage.NoticeClosedAgain:
		b = "⛔ <b>Closed again</b>: " + what + ". It is blocked"
		if n.RuleBy.Name != "" {
			b += " since " + n.RuleSince.In(loc).Format("2 Jan 2006") + " by " + esc(n.RuleBy.Name, 64)
		}
		b += "."
	case n.Note.Kind == storage.NoteRefused:
		b = "⚠️ <b>Blocked share is open</b>: " + what + ". " + refusalText(n.Note.UPnPCode)
	default:
		b = "⚠️ <b>Blocked share is open</b>: " + what + ". " + unreachableText(n.Note.Error, "")
	}
	if n.Unreported > 0 {
		b += fmt.Sprintf(" (%d more times since the last notice.)", n.Unreported)
	}
	return b
}

// noticeText returns the HTML of a notice item: its notice worded now, or
// the text an older version of doorman queued.
func noticeText(it storage.OutboxItem, loc *time.Location) string {
	if it.Notice != nil {
		return renderNotice(*it.Notice, loc)
	}
	return it.Text
}
