package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

func TestNoticesAreWorded(t *testing.T) {
	since := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	cam := mapping(554, "192.168.77.30", "IPCam RTSP")
	evil := mapping(8080, "192.168.77.21", `<a href="http://evil">x</a>&`)
	refused := storage.Note{Kind: storage.NoteRefused, UPnPCode: 606}
	down := storage.Note{Kind: storage.NoteUnreachable, Error: "dial tcp: i/o <timeout>"}
	tests := []struct {
		name   string
		notice storage.Notice
		want   []string
		not    []string
	}{
		{"closed again", storage.Notice{Kind: storage.NoticeClosedAgain, Mapping: cam, RuleSince: since, RuleBy: storage.User{Name: "Alice"}},
			[]string{"⛔ <b>Closed again</b>: 192.168.77.30 reopened TCP 554 → 554 (IPCam RTSP). It is blocked since 2 Nov 2026 by Alice."}, []string{"more times"}},
		{"closed again, counted", storage.Notice{Kind: storage.NoticeClosedAgain, Mapping: cam, Unreported: 1},
			[]string{"It is blocked. (1 more time since the last notice.)"}, []string{"since 2"}},
		{"description escaped", storage.Notice{Kind: storage.NoticeClosedAgain, Mapping: evil},
			[]string{"&lt;a href="}, []string{"<a "}},
		{"refused", storage.Notice{Kind: storage.NoticeBlockedOpen, Mapping: cam, Note: refused},
			[]string{"⚠️ <b>Blocked share is open</b>: 192.168.77.30 reopened", "(UPnP error 606)", "secure mode", "Then press Block again."}, nil},
		{"unreachable", storage.Notice{Kind: storage.NoticeBlockedOpen, Mapping: cam, Note: down, Unreported: 3},
			[]string{"Could not reach the router to close it: dial tcp: i/o &lt;timeout&gt; (3 more times"}, []string{"<timeout>"}},
		{"not closed in a batch", storage.Notice{Kind: storage.NoticeNotClosed, Mapping: cam, Note: down},
			[]string{"⚠️ <b>Not closed</b>: 192.168.77.30 TCP 554 → 554. Could not reach the router to close it: dial tcp: i/o &lt;timeout&gt;. The share may still be open; press Block again."}, nil},
		{"not closed in a digest", storage.Notice{Kind: storage.NoticeStaleNotClosed, Mapping: cam, Note: refused},
			[]string{"⚠️ <b>Not closed</b>: 192.168.77.30 TCP 554 → 554. The router refused to close it (UPnP error 606)"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := (Words{}).noticeText(storage.OutboxItem{Kind: storage.OutboxNotice, Notice: &tt.notice}, time.UTC)
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("notice lacks %q:\n%s", w, text)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(text, w) {
					t.Errorf("notice has %q:\n%s", w, text)
				}
			}
			if _, err := renderCheck(text); err != nil {
				t.Error(err)
			}
		})
	}
	// A notice queued by an older version is sent as it was written.
	if got := (Words{}).noticeText(storage.OutboxItem{Kind: storage.OutboxNotice, Text: "⛔ <b>Closed again</b>: old"}, time.UTC); got != "⛔ <b>Closed again</b>: old" {
		t.Errorf("old notice = %q", got)
	}
}

func TestAlertNotesAreWorded(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	m := mapping(3389, "192.168.77.40", "RDP")
	alice := storage.User{ID: 7, Name: "Alice"}
	tests := []struct {
		name  string
		state storage.AlertState
		note  storage.Note
		want  string
		not   []string
	}{
		{"refused", storage.AlertPending, storage.Note{Kind: storage.NoteRefused, UPnPCode: 714}, "⚠️ The router refused to close it (UPnP error 714), so it is still open.", nil},
		{"unreachable", storage.AlertPending, storage.Note{Kind: storage.NoteUnreachable, Error: "timeout"}, "⚠️ Could not reach the router to close it: timeout. The share may still be open; press Block again.", nil},
		{"see below", storage.AlertPending, storage.Note{Kind: storage.NoteSeeBelow}, "⚠️ Not closed; see the message below.", nil},
		{"trusted device", storage.AlertAllowed, storage.Note{Kind: storage.NoteTrustedDevice}, "this service again. Everything this device opens is trusted.", nil},
		// A note from before the decision does not stand under it.
		{"stale refusal", storage.AlertAllowed, storage.Note{Kind: storage.NoteRefused, UPnPCode: 606}, "this service again.", []string{"refused", "606"}},
		{"changed", storage.AlertSuperseded, storage.Note{Kind: storage.NoteChanged}, "↪️ The share changed; see the newer message.", nil},
		{"reopened", storage.AlertSuperseded, storage.Note{Kind: storage.NoteReopenedByOther}, "↪️ The share closed, and the port was opened again by another device or app; see the newer message.", nil},
		{"asked again", storage.AlertSuperseded, storage.Note{Kind: storage.NoteAskedAgain}, "↪️ Asked again in the newly paired chat.", nil},
		// Notes of older versions: HTML under a pending alert, plain
		// text elsewhere, shown as before.
		{"old pending", storage.AlertPending, storage.Note{Kind: storage.NoteText, Text: "Not closed; <b>see</b> below."}, "⚠️ Not closed; <b>see</b> below.", nil},
		{"old superseded", storage.AlertSuperseded, storage.Note{Kind: storage.NoteText, Text: "Changed & moved."}, "↪️ Changed &amp; moved.", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := storage.Alert{ID: 1, Kind: storage.AlertNew, Share: storage.Share{Mapping: m, FirstSeen: now}, State: tt.state, Note: tt.note, DecidedBy: alice, DecidedAt: now}
			text, _ := renderService([]storage.Alert{a}, view{loc: time.UTC, now: now})
			if !strings.Contains(text, tt.want) {
				t.Errorf("alert lacks %q:\n%s", tt.want, text)
			}
			for _, w := range tt.not {
				if strings.Contains(text, w) {
					t.Errorf("alert has %q:\n%s", w, text)
				}
			}
		})
	}
}

func TestStaleReasonsAreWorded(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		r    storage.StaleReason
		want string
	}{
		{storage.StaleReason{Kind: "old", OpenFor: 30 * day}, "open for 30 days"},
		{storage.StaleReason{Kind: "permanent"}, "permanent: it never closes by itself"},
		{storage.StaleReason{Kind: "long-lease", OpenFor: 2 * day, Lease: 30 * day}, "lease of 30 days left, far longer than the 2 days it has been open"},
		{storage.StaleReason{Kind: "device-away", AwayFor: 3 * time.Hour}, "the device has not been seen on the network for 3 hours"},
		// A digest stored by an older version keeps its words.
		{storage.StaleReason{Kind: "old", Text: "open for 15 days"}, "open for 15 days"},
	}
	for _, tt := range tests {
		if got := (Words{}).staleReasonText(tt.r); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.r, got, tt.want)
		}
	}
}
