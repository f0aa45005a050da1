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
		var to string
		switch {
		case q.Busy:
			to = " busy"
		case q.Join != 0:
			to = fmt.Sprintf(" join=%d", q.Join)
		case q.With >= 0:
			to = fmt.Sprintf(" with=%d", q.With)
		}
		add("ask %s %s %d%s", q.Kind, q.Share.Mapping.Protocol, q.Share.Mapping.ExternalPort, to)
	}
	for _, a := range out.Updated {
		add("update %d %q", a.ID, a.Share.Mapping.Description)
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
	for svc := range out.Asked {
		add("asked %s", svc)
	}
	if len(out.Deferred) > 0 {
		add("deferred %d", len(out.Deferred))
	}
	if len(out.Undeferred) > 0 {
		add("undeferred")
	}
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
	webUDP := web
	webUDP.Protocol = "UDP"
	flipped, legit := web, web
	flipped.Description, legit.Description = "web 2", "totally legit"
	elsewhere := legit
	elsewhere.Protocol, elsewhere.ExternalPort = "UDP", 2324
	webQuestion := storage.Alert{ID: 5, Batch: 5, Kind: storage.AlertNew, State: storage.AlertPending, Share: storage.Share{Mapping: web}}
	plex, notPlex := share(32400, "192.168.77.21", "Plex Media Server"), share(32400, "192.168.77.21", "Transmission at 32400")
	portTrust := func(m watcher.Mapping) []storage.Rule {
		return []storage.Rule{{ID: 1, Kind: storage.RuleTrust, Scope: storage.ScopePort, Service: storage.ServiceOf(m), Example: m}}
	}
	pendingOn := func(as ...storage.Alert) func(*transitionInput) {
		return func(in *transitionInput) { in.Pending = append(in.Pending, as...) }
	}
	both := func(fs ...func(*transitionInput)) func(*transitionInput) {
		return func(in *transitionInput) {
			for _, f := range fs {
				f(in)
			}
		}
	}
	// The device of web moves to .99 and keeps its MAC.
	moved := func(m watcher.Mapping) watcher.Mapping { m.InternalClient = "192.168.77.99"; return m }
	macs := func(in *transitionInput) {
		in.MAC = func(ip string) string {
			if ip == "192.168.77.21" || ip == "192.168.77.99" {
				return "aa:bb"
			}
			return ""
		}
	}
	burst := func(n int) []watcher.Mapping {
		var ms []watcher.Mapping
		for i := range n {
			ms = append(ms, share(uint16(30000+i), "192.168.77.21", fmt.Sprint("burst ", i)))
		}
		return ms
	}
	burstEvents := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "event new %d ; ", 30000+i)
		}
		return b.String()
	}
	recent := func(n int, ago time.Duration) []time.Time {
		var ts []time.Time
		for range n {
			ts = append(ts, now.Add(-ago))
		}
		return ts
	}
	busy := func(ts []time.Time) func(*transitionInput) {
		return func(in *transitionInput) {
			in.Busy = DefaultBusyLimit
			in.Recent = map[string][]time.Time{"192.168.77.21": ts}
		}
	}
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
			want: "ask new TCP 8080; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},
		{name: "unchanged", stored: []storage.Share{open(web, 5)}, alerts: pending, listing: []watcher.Mapping{web},
			want: "put 8080 open alert=5; router; new=0 changed=0 gone=0 returned=0"},
		{name: "unchanged, first listing since start", stored: []storage.Share{open(web, 5)}, alerts: pending, listing: []watcher.Mapping{web}, mod: func(in *transitionInput) { in.First = true },
			want: "put 8080 open alert=5; event open 8080 ; router; new=0 changed=0 gone=0 returned=0"},
		{name: "changed", stored: []storage.Share{open(web, 5)}, alerts: pending, listing: []watcher.Mapping{other},
			want: "ask changed TCP 8080; supersede 5 superseded-changed; event changed 8080 ; router; new=0 changed=1 gone=0 returned=0; asked 192.168.77.22/8080"},
		{name: "returned while pending", stored: []storage.Share{gone(web, 5, time.Hour)}, alerts: pending, listing: []watcher.Mapping{web},
			want: "put 8080 open alert=5; event new 8080 ; router; new=0 changed=0 gone=0 returned=1"},
		{name: "returned after an answer is asked again", stored: []storage.Share{gone(web, 5, time.Hour)}, alerts: answered, listing: []watcher.Mapping{web},
			want: "ask new TCP 8080; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},
		{name: "gone, complete listing", stored: []storage.Share{open(web, 5)}, alerts: pending,
			want: "put 8080 gone alert=5; event gone 8080 ; router; new=0 changed=0 gone=1 returned=0"},
		{name: "gone, partial listing", stored: []storage.Share{open(web, 5)}, alerts: pending, partial: true,
			want: "router; new=0 changed=0 gone=0 returned=0"},
		{name: "expired gone", stored: []storage.Share{gone(web, 5, DefaultKeepGone+time.Hour)},
			want: "delete 8080; router; new=0 changed=0 gone=0 returned=0"},
		{name: "another device took the port", stored: []storage.Share{gone(web, 5, time.Hour)}, alerts: pending, listing: []watcher.Mapping{other},
			want: "ask new TCP 8080; supersede 5 superseded-reopened-by-other; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},
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
			want: "ask new TCP 8080; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},

		// One question per service: a device's inside port.
		{name: "one service's shares in one listing share a message", listing: []watcher.Mapping{web, webUDP, share(9000, "192.168.77.21", "x")},
			want: "ask new TCP 8080; ask new UDP 8080 with=0; ask new TCP 9000; event new 8080 ; event new 8080 ; event new 9000 ; router; new=3 changed=0 gone=0 returned=0"},
		{name: "a share joins its service's pending question", listing: []watcher.Mapping{webUDP}, mod: pendingOn(webQuestion),
			want: "ask new UDP 8080 join=5; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},
		{name: "another inside port is another service", listing: []watcher.Mapping{share(9000, "192.168.77.21", "web")}, mod: pendingOn(webQuestion),
			want: "ask new TCP 9000; event new 9000 ; router; new=1 changed=0 gone=0 returned=0"},
		{name: "another device is another service", listing: []watcher.Mapping{share(8081, "192.168.77.22", "web")}, mod: pendingOn(webQuestion),
			want: "ask new TCP 8081; event new 8081 ; router; new=1 changed=0 gone=0 returned=0"},
		{name: "a flip while asked edits the question", stored: []storage.Share{open(web, 5)}, listing: []watcher.Mapping{flipped}, mod: pendingOn(webQuestion),
			want: "put 8080 open alert=5; update 5 \"web 2\"; event changed 8080 ; router; new=0 changed=1 gone=0 returned=0"},

		{name: "a flip by closing and reopening edits the question", stored: []storage.Share{gone(web, 5, time.Second)}, listing: []watcher.Mapping{flipped}, mod: pendingOn(webQuestion),
			want: "put 8080 open alert=5; update 5 \"web 2\"; event changed 8080 ; router; new=0 changed=0 gone=0 returned=1"},

		{name: "a change within ten minutes of a message from a change is left unasked", stored: []storage.Share{open(web, 5)}, alerts: answered, listing: []watcher.Mapping{other},
			mod: func(in *transitionInput) {
				in.Asked = map[string]time.Time{"192.168.77.22/8080": now.Add(-time.Minute)}
			},
			want: "put 8080 open alert=0; event changed 8080 ; router; new=0 changed=1 gone=0 returned=0; deferred 1"},
		{name: "a change asked about is counted for the limit", stored: []storage.Share{open(web, 5)}, alerts: answered, listing: []watcher.Mapping{other},
			mod: func(in *transitionInput) {
				in.Asked = map[string]time.Time{"192.168.77.22/8080": now.Add(-11 * time.Minute)}
			},
			want: "ask changed TCP 8080; event changed 8080 ; router; new=0 changed=1 gone=0 returned=0; asked 192.168.77.22/8080"},
		{name: "a change left unasked is asked once the limit is over", stored: []storage.Share{open(other, 0)}, listing: []watcher.Mapping{other},
			mod: func(in *transitionInput) {
				in.Asked = map[string]time.Time{"192.168.77.22/8080": now.Add(-11 * time.Minute)}
				in.Deferred = map[string]bool{storage.ShareKey(other.Key()): true}
			},
			want: "ask changed TCP 8080; router; new=0 changed=0 gone=0 returned=0; asked 192.168.77.22/8080; undeferred"},

		// A Block covers the device's inside port, an Allow too, but not
		// another app.
		{name: "block escaped by description", rules: block, listing: []watcher.Mapping{legit},
			want: "put 8080 open alert=0; rule 2 matches=1; close 8080; event new 8080 block; router; new=1 changed=0 gone=0 returned=0"},
		{name: "block escaped by outside port and protocol", rules: block, listing: []watcher.Mapping{elsewhere},
			want: "put 2324 open alert=0; rule 2 matches=1; close 2324; event new 2324 block; router; new=1 changed=0 gone=0 returned=0"},
		{name: "block follows the MAC to another address", rules: []storage.Rule{{ID: 2, Kind: storage.RuleBlock, Scope: storage.ScopeDevice, MAC: "aa:bb", Service: storage.ServiceOf(web)}}, listing: []watcher.Mapping{moved(legit)}, mod: macs,
			want: "put 8080 open alert=0; rule 2 matches=1; close 8080; event new 8080 block; router; new=1 changed=0 gone=0 returned=0"},
		{name: "block wins over a trusted device", rules: []storage.Rule{{ID: 1, Kind: storage.RuleTrust, Scope: storage.ScopeDevice, Service: storage.ServiceOf(web)}, block[0]}, listing: []watcher.Mapping{legit},
			want: "put 8080 open alert=0; rule 2 matches=1; close 8080; event new 8080 block; router; new=1 changed=0 gone=0 returned=0"},
		{name: "a trust of the port covers a renewal elsewhere", rules: portTrust(web), listing: []watcher.Mapping{elsewhere},
			want: "put 2324 open alert=0; rule 1 matches=0; event new 2324 trust; router; new=1 changed=0 gone=0 returned=0"},
		{name: "a trust of the port does not cover another app", rules: portTrust(plex), listing: []watcher.Mapping{notPlex}, mod: func(in *transitionInput) { in.AppName = testApps },
			want: "ask new TCP 32400; event new 32400 ; router; new=1 changed=0 gone=0 returned=0"},
		{name: "a trust of the port covers an unnamed share", rules: portTrust(plex), listing: []watcher.Mapping{share(32400, "192.168.77.21", "")}, mod: func(in *transitionInput) { in.AppName = testApps },
			want: "put 32400 open alert=0; rule 1 matches=0; event new 32400 trust; router; new=1 changed=0 gone=0 returned=0"},
		{name: "an old trust keeps its description", rules: trust, listing: []watcher.Mapping{legit},
			want: "ask new TCP 8080; event new 8080 ; router; new=1 changed=0 gone=0 returned=0"},

		// A busy device gets one message.
		{name: "more than the limit in one listing", listing: burst(6), mod: busy(nil),
			want: "ask new TCP 30000 busy; ask new TCP 30001 with=0; ask new TCP 30002 with=0; ask new TCP 30003 with=0; ask new TCP 30004 with=0; ask new TCP 30005 with=0; " + burstEvents(6) + "router; new=6 changed=0 gone=0 returned=0"},
		{name: "the limit itself is not busy", listing: burst(5), mod: busy(nil),
			want: "ask new TCP 30000; ask new TCP 30001; ask new TCP 30002; ask new TCP 30003; ask new TCP 30004; " + burstEvents(5) + "router; new=5 changed=0 gone=0 returned=0"},
		{name: "over the limit with the minute before, folding its question", listing: burst(1), mod: both(pendingOn(webQuestion), busy(recent(5, 30*time.Second))),
			want: "ask new TCP 30000 busy; supersede 5 busy-device; " + burstEvents(1) + "router; new=1 changed=0 gone=0 returned=0"},
		{name: "what is older than the window does not count", listing: burst(1), mod: busy(recent(5, 2*time.Minute)),
			want: "ask new TCP 30000; " + burstEvents(1) + "router; new=1 changed=0 gone=0 returned=0"},
		{name: "a busy device's share joins its question", listing: burst(1), mod: pendingOn(storage.Alert{ID: 7, Batch: 7, Busy: true, Kind: storage.AlertNew, State: storage.AlertPending, Share: storage.Share{Mapping: web}}),
			want: "ask new TCP 30000 join=7; " + burstEvents(1) + "router; new=1 changed=0 gone=0 returned=0"},
		{name: "another device is still asked", listing: []watcher.Mapping{share(8081, "192.168.77.22", "web")}, mod: pendingOn(storage.Alert{ID: 7, Batch: 7, Busy: true, Kind: storage.AlertNew, State: storage.AlertPending, Share: storage.Share{Mapping: web}}),
			want: "ask new TCP 8081; event new 8081 ; router; new=1 changed=0 gone=0 returned=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.alerts == nil {
				tt.alerts = map[uint64]storage.Alert{}
			}
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
