package storage

import (
	"encoding/json"
	"testing"
)

// Items queued by older versions carry no class; their kind gives it, and
// Enqueue gives new ones theirs.
func TestOutboxPriority(t *testing.T) {
	tests := []struct {
		stored string
		want   OutboxClass
	}{
		{`{"Seq":1,"Kind":"alert","ChatID":5}`, ClassQuestion},
		{`{"Seq":2,"Kind":"edit","AlertID":3,"ChatID":5}`, ClassEdit},
		{`{"Seq":3,"Kind":"notice","ChatID":5,"Text":"⛔"}`, ClassNotice},
		{`{"Seq":4,"Kind":"digest","DigestID":1,"ChatID":5}`, ClassDigest},
		{`{"Seq":5,"Kind":"digest-edit","DigestID":1,"ChatID":5}`, ClassDigest},
		{`{"Seq":6,"Kind":"notice","Class":1,"ChatID":5}`, ClassQuestion},
	}
	for _, tt := range tests {
		var it OutboxItem
		if err := json.Unmarshal([]byte(tt.stored), &it); err != nil {
			t.Fatal(err)
		}
		if got := it.Priority(); got != tt.want {
			t.Errorf("%s: priority %d, want %d", tt.stored, got, tt.want)
		}
	}
	db := openTemp(t)
	err := db.Update(func(tx *Tx) error {
		it := OutboxItem{Kind: OutboxEdit}
		if err := tx.Enqueue(&it); err != nil {
			return err
		}
		if it.Class != ClassEdit {
			t.Errorf("Enqueue gave class %d", it.Class)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOutboxTargets(t *testing.T) {
	edit := func(alert uint64) OutboxItem { return OutboxItem{Kind: OutboxEdit, AlertID: alert} }
	page := func(d uint64, p int) OutboxItem { return OutboxItem{Kind: OutboxDigestEdit, DigestID: d, Page: p} }
	tests := []struct {
		a, b OutboxItem
		same bool
	}{
		{edit(1), edit(1), true},
		{edit(1), edit(2), false},
		{edit(1), OutboxItem{Kind: OutboxAlert, AlertID: 1}, false},
		{OutboxItem{Kind: OutboxAlert, AlertID: 1}, OutboxItem{Kind: OutboxAlert, AlertID: 1}, false},
		{page(1, 0), page(1, 0), true},
		{page(1, 0), page(1, 1), false},
		{OutboxItem{Kind: OutboxNotice}, OutboxItem{Kind: OutboxNotice}, false},
	}
	for _, tt := range tests {
		if got := tt.a.SameTarget(tt.b); got != tt.same {
			t.Errorf("%+v and %+v: same %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
	for _, k := range []OutboxKind{OutboxAlert, OutboxNotice, OutboxDigest} {
		if !(OutboxItem{Kind: k}).FollowsOwner() {
			t.Errorf("%s does not follow the owner", k)
		}
	}
	for _, k := range []OutboxKind{OutboxEdit, OutboxDigestEdit} {
		if (OutboxItem{Kind: k}).FollowsOwner() {
			t.Errorf("%s follows the owner; its message stays where it is", k)
		}
	}
}
