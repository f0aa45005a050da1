package bot

import (
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
func (w Words) refusalText(code int) string {
	why := w.T("Refused")
	if code != 0 {
		why = w.T("RefusedCode", "Code", code)
	}
	return why + " " + w.T("RefusedAdvice")
}

// unreachableText says that the router could not be reached, as HTML;
// retry is what the owner can do about it.
func (w Words) unreachableText(errText string, retry retryHint) string {
	return w.T("Unreachable", "Error", html.EscapeString(errText)) + w.retry(retry)
}

// retryHint is what the owner can do after an unreachable router, by where
// the note stands.
type retryHint int

const (
	retryNone retryHint = iota
	retryBlock
	retryClose
)

func (w Words) retry(r retryHint) string {
	switch r {
	case retryBlock:
		return w.T("RetryBlock")
	case retryClose:
		return w.T("RetryClose")
	}
	return ""
}

// failureNote words why a share was not closed (HTML), "" for a note that
// says something else.
func (w Words) failureNote(n storage.Note, retry retryHint) string {
	switch n.Kind {
	case storage.NoteRefused:
		return w.refusalText(n.UPnPCode)
	case storage.NoteUnreachable:
		return w.unreachableText(n.Error, retry)
	case storage.NoteSeeBelow:
		return w.T("NotClosedSeeBelow")
	}
	return ""
}

// supersededNote words why a question no longer applies, as plain text.
func (w Words) supersededNote(n storage.Note) string {
	switch n.Kind {
	case storage.NoteChanged:
		return w.T("SupersededChanged")
	case storage.NoteReopenedByOther:
		return w.T("SupersededReopenedByOther")
	case storage.NoteAskedAgain:
		return w.T("SupersededAskedAgain")
	case storage.NoteBusyDevice:
		return w.T("SupersededBusyDevice")
	case storage.NoteText:
		return n.Text
	}
	return ""
}

// pendingNote words the note of an alert that still waits for an answer, as
// HTML. Text notes of older versions were HTML here.
func (w Words) pendingNote(n storage.Note) string {
	if n.Kind == storage.NoteText {
		return n.Text
	}
	return w.failureNote(n, retryBlock)
}

// allowedNote words the note of an allowed alert, as plain text; a note
// left from before the decision (a failed Block) says nothing any more.
func (w Words) allowedNote(n storage.Note) string {
	switch n.Kind {
	case storage.NoteTrustedDevice:
		return w.T("TrustedDeviceNote")
	case storage.NoteText:
		return n.Text
	}
	return ""
}

// digestNote words the note of a digest entry, as HTML.
func (w Words) digestNote(n storage.Note) string {
	if n.Kind == storage.NoteText {
		return n.Text
	}
	return w.failureNote(n, retryClose)
}

// renderNotice words a notice, as HTML.
func (w Words) renderNotice(n storage.Notice, loc *time.Location) string {
	m := n.Mapping
	share := w.T("NoticeShare", "Device", esc(m.InternalClient, 64), "Protocol", m.Protocol, "External", m.ExternalPort, "Internal", m.InternalPort)
	switch n.Kind {
	case storage.NoticeNotClosed, storage.NoticeStaleNotClosed:
		retry := retryBlock
		if n.Kind == storage.NoticeStaleNotClosed {
			retry = retryClose
		}
		return w.T("NoticeNotClosed", "Share", share, "Why", w.failureNote(n.Note, retry))
	}
	fields := []any{"Device", esc(m.InternalClient, 64), "Protocol", m.Protocol, "External", m.ExternalPort, "Internal", m.InternalPort}
	what := w.T("NoticeReopened", fields...)
	if m.Description != "" {
		what = w.T("NoticeReopenedAs", append(fields, "Description", esc(m.Description, 80))...)
	}
	var b string
	switch {
	case n.Kind == storage.NoticeClosedAgain && n.RuleBy.Name != "":
		b = w.T("NoticeClosedAgainSince", "What", what, "Since", n.RuleSince.In(loc).Format("2 Jan 2006"), "Name", esc(n.RuleBy.Name, 64))
	case n.Kind == storage.NoticeClosedAgain:
		b = w.T("NoticeClosedAgain", "What", what)
	case n.Note.Kind == storage.NoteRefused:
		b = w.T("NoticeBlockedOpen", "What", what, "Why", w.refusalText(n.Note.UPnPCode))
	default:
		b = w.T("NoticeBlockedOpen", "What", what, "Why", w.unreachableText(n.Note.Error, retryNone))
	}
	if n.Unreported > 0 {
		b += w.N("NoticeMoreTimes", n.Unreported)
	}
	return b
}

// noticeText returns the HTML of a notice item: its notice worded now, or
// the text an older version of doorman queued.
func (w Words) noticeText(it storage.OutboxItem, loc *time.Location) string {
	if it.Notice != nil {
		return w.renderNotice(*it.Notice, loc)
	}
	return it.Text
}
