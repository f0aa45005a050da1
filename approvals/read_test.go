package approvals

import (
	"context"
	"errors"
	"testing"

	"github.com/doorman-upnp/doorman/storage"
)

func TestReadAPI(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.list(true)
	web, cam, nas := share(8080, "192.168.77.21", "web"), share(554, "192.168.77.30", "cam"), share(445, "192.168.77.40", "SMB")
	ch := f.list(true, web, cam, nas)
	if len(ch.Alerts) != 3 {
		t.Fatalf("%+v", ch)
	}
	if _, err := f.engine.Decide(ctx, ch.Alerts[0], Allow, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.Decide(ctx, ch.Alerts[1], Block, alice); err != nil {
		t.Fatal(err)
	}
	// The camera's share was closed by the Block: it is not open.
	shares, err := f.engine.OpenShares(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint16]OpenShare{}
	for _, s := range shares {
		got[s.Mapping.ExternalPort] = s
	}
	if len(got) != 2 || got[8080].Rule != storage.RuleTrust || got[8080].Waiting || got[445].Rule != "" || !got[445].Waiting {
		t.Errorf("open shares = %+v", shares)
	}
	trusted, err := f.engine.Rules(ctx, storage.RuleTrust)
	if err != nil || len(trusted) != 1 || trusted[0].Service.InternalPort != 8080 {
		t.Errorf("trusted = %+v, %v", trusted, err)
	}
	blocked, err := f.engine.Rules(ctx, storage.RuleBlock)
	if err != nil || len(blocked) != 1 || blocked[0].Service.InternalPort != 554 {
		t.Errorf("blocked = %+v, %v", blocked, err)
	}
	if open, rules, err := f.engine.Counts(ctx); open != 2 || rules != 2 || err != nil {
		t.Errorf("Counts = %d, %d, %v", open, rules, err)
	}
	if a, err := f.engine.Alert(ctx, ch.Alerts[2]); err != nil || a.State != storage.AlertPending {
		t.Errorf("Alert = %+v, %v", a, err)
	}
	if _, err := f.engine.Alert(ctx, 999); !errors.Is(err, ErrUnknownAlert) {
		t.Errorf("unknown alert: %v", err)
	}
	if _, err := f.engine.Digest(ctx, 999); !errors.Is(err, ErrDigestItem) {
		t.Errorf("unknown digest: %v", err)
	}
}
