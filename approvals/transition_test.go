package approvals

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// summary sums up a transition's output in one line, so that a table row
// says everything the decision did.
func summary(out transitionOutput) string {
	var b []string
	add := func(format string, args ...any) { b = append(b, fmt.Sprintf(format, args...)) }
	for _, s := range out.Put {
		state := "open"
		if s.Gone() {
			state = "gone"
		}
		add("put %d %s alert=%d", s.Mapping.ExternalPort, state, s.AlertID)
	}
	for _, q := range out.Ask {
		add("ask %s %d", q.Kind, q.Share.Mapping.ExternalPort)
	}
	for _, s := range out.AskBatch {
		add("batch %d", s.Mapping.ExternalPort)
	}
	for _, k := range out.Delete {
		add("delete %s", k[strings.LastIndexByte(k[:len(k)-1], 0)+1:len(k)-1])
	}
	for _, a := range out.Superseded {
		add("supersede %d %s", a.ID, a.Note.Kind)
	}
	for _, r := range out.Rules {
		add("rule %d matches=%d", r.ID, r.Matches)
	}
	for _, en := range out.Enforce {
		add("close %d", en.share.Mapping.ExternalPort)
	}
	for _, ev := range out.Events {
		add("event %s %d %s", ev.Kind, ev.Mapping.ExternalPort, ev.Rule)
	}
	if out.Router != nil {
		add("router")
	}
	c := out.Changes
	add("new=%d changed=%d gone=%d returned=%d", c.New, c.Changed, c.Gone, c.Returned)
	return strings.Join(b, "; ")
}

func TestTransition(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	web := share(8080, "192.168.77.21", "web")
	other := share(8080, "192.168.77.22", "B")
	open := func(m watcher.Mapping, alert uint64) storage.Share {
		return storage.Share{Mapping: m, FirstSeen: now.Add(-time.Hour), LastSeen: now.Add(-time.Minute), AlertID: alert}
	}
	gone := func(m watcher.Mapping, alert uint64, ago time.Duration) storage.Share {
		s := open(m, alert)
		s.GoneAt = now.Add(-ago)
		return s
	}
	pending := map[uint64]storage.Alert{5: {ID: 5, State: storage.AlertPending}}
	answered := map[uint64]storage.Alert{5: {ID: 5, State: storage.AlertAllowed}}
	trust := []storage.Rule{{ID: 1, Kind: storage.RuleTrust, Service: storage.ServiceOf(web)}}
	block := []storage.Rule{{ID: 2, Kind: storage.RuleBlock, Service: storage.ServiceOf(web)}}
	tests := []struct {
		name    string
		stored  []storage.Share
		alerts  map[uint64]storage.Alert
		rules   []storage.Rule
		listing []watcher.Mapping
		partial bool
		mod     func(*transitionInput)
		want    string
	}{
		{name: "new", listing: []watcher.Mapping{web},
			want: "ask new 8080; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},
		{name: "unchanged", stored: []storage.Share{open(web, 5)}, alerts: pending, listing: []watcher.Mapping{web},
			want: "put 8080 open alert=5; router; new=0 changed=0 gone=0 returned=0"},
		{name: "unchanged, first listing since start", stored: []storage.Share{open(web, 5)}, alerts: pending, listing: []watcher.Mapping{web}, mod: func(in *transitionInput) { in.First = true },
			want: "put 8080 open alert=5; event open 8080 ; router; new=0 changed=0 gone=0 returned=0"},
		{name: "changed", stored: []storage.Share{open(web, 5)}, alerts: pending, listing: []watcher.Mapping{other},
			want: "ask changed 8080; supersede 5 superseded-changed; event changed 8080 ; router; new=0 changed=1 gone=0 returned=0"},
		{name: "returned while pending", stored: []storage.Share{gone(web, 5, time.Hour)}, alerts: pending, listing: []watcher.Mapping{web},
			want: "put 8080 open alert=5; event new 8080 ; router; new=0 changed=0 gone=0 returned=1"},
		{name: "returned after an answer is asked again", stored: []storage.Share{gone(web, 5, time.Hour)}, alerts: answered, listing: []watcher.Mapping{web},
			want: "ask new 8080; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},
		{name: "gone, complete listing", stored: []storage.Share{open(web, 5)}, alerts: pending,
			want: "put 8080 gone alert=5; event gone 8080 ; router; new=0 changed=0 gone=1 returned=0"},
		{name: "gone, partial listing", stored: []storage.Share{open(web, 5)}, alerts: pending, partial: true,
			want: "router; new=0 changed=0 gone=0 returned=0"},
		{name: "expired gone", stored: []storage.Share{gone(web, 5, DefaultKeepGone+time.Hour)},
			want: "delete 8080; router; new=0 changed=0 gone=0 returned=0"},
		{name: "another device took the port", stored: []storage.Share{gone(web, 5, time.Hour)}, alerts: pending, listing: []watcher.Mapping{other},
			want: "ask new 8080; supersede 5 superseded-reopened-by-other; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},
		{name: "covered by trust", rules: trust, listing: []watcher.Mapping{web},
			want: "put 8080 open alert=0; rule 1 matches=0; event new 8080 trust; router; new=1 changed=0 gone=0 returned=0"},
		{name: "covered by block", rules: block, listing: []watcher.Mapping{web},
			want: "put 8080 open alert=0; rule 2 matches=1; close 8080; event new 8080 block; router; new=1 changed=0 gone=0 returned=0"},
		{name: "covered by block, refused a minute ago", rules: block, listing: []watcher.Mapping{web},
			mod: func(in *transitionInput) {
				in.Refused = map[string]time.Time{storage.ShareKey(web.Key()): now.Add(-time.Minute)}
			},
			want: "put 8080 open alert=0; rule 2 matches=0; event new 8080 block; router; new=1 changed=0 gone=0 returned=0"},
		{name: "no chat", listing: []watcher.Mapping{web}, mod: func(in *transitionInput) { in.Chat = 0 },
			want: "put 8080 open alert=0; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},
		{name: "first listing of an unknown router", listing: []watcher.Mapping{web, share(9000, "192.168.77.21", "x")}, mod: func(in *transitionInput) { in.Known, in.First = false, true },
			want: "batch 8080; batch 9000; event open 8080 ; event open 9000 ; router; new=2 changed=0 gone=0 returned=0"},
		{name: "partial first listing of an unknown router", listing: []watcher.Mapping{web}, partial: true, mod: func(in *transitionInput) { in.Known, in.First = false, true },
			want: "batch 8080; event open 8080 ; new=1 changed=0 gone=0 returned=0"},
		{name: "a share listed twice counts once", listing: []watcher.Mapping{web, web},
			want: "ask new 8080; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := transitionInput{
				Listing: Listing{Router: testRouter, Service: testService, Mappings: tt.listing, Complete: !tt.partial},
				Stored:  tt.stored, Alerts: tt.alerts, Rules: tt.rules,
				Router: storage.Router{URL: testRouter, Service: testService, FirstSeen: now.Add(-24 * time.Hour)}, Known: true,
				Chat: 42, Now: now, KeepGone: DefaultKeepGone, NoticeInterval: DefaultNoticeInterval,
			}
			if tt.mod != nil {
				tt.mod(&in)
			}
			rulesBefore := fmt.Sprint(in.Rules)
			if got := summary(transition(in)); got != tt.want {
				t.Errorf("transition:\n got %s\nwant %s", got, tt.want)
			}
			if fmt.Sprint(in.Rules) != rulesBefore {
				t.Error("the transition changed its input's rules")
			}
		})
	}
}
