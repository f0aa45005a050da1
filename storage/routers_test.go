package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/watcher"
	bolt "go.etcd.io/bbolt"
)

const (
	oldURL     = "http://192.168.77.1:5000/rootDesc.xml"
	routerUDN  = "uuid:75802409-bccb-40e7-8e6c-989bcb2b93b0"
	routerID   = routerUDN + "@192.168.77.1"
	oldService = "urn:schemas-upnp-org:service:WANIPConnection:2"
)

// writeSchema1 writes a database as doorman wrote it before routers had
// identities: schema 1, every record keyed on the description URL, plus a
// share of another router (192.168.1.1) that must stay where it is.
func writeSchema1(t *testing.T, path string) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	err = b.Update(func(btx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketShares, bucketRules, bucketAlerts, bucketOutbox, bucketRouters, bucketDigests} {
			if _, err := btx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, 1)
		if err := btx.Bucket(bucketMeta).Put(keySchema, v); err != nil {
			return err
		}
		// The routers entry as schema 1 wrote it, field by field.
		raw := fmt.Sprintf(`{"URL":%q,"Service":%q,"FirstSeen":"2026-01-02T03:04:05Z","LastList":"2026-01-02T03:04:05Z"}`, oldURL, oldService)
		if err := btx.Bucket(bucketRouters).Put([]byte(oldURL+"\x00"+oldService), []byte(raw)); err != nil {
			return err
		}
		tx := &Tx{tx: btx}
		m := watcher.Mapping{Router: oldURL, Service: oldService, Protocol: "TCP", ExternalPort: 8080, InternalClient: "192.168.77.21", InternalPort: 80, Enabled: true, Description: "cam"}
		a := &Alert{Kind: AlertNew, Share: Share{Mapping: m, FirstSeen: t0, LastSeen: t0}, State: AlertPending, CreatedAt: t0, ChatID: 42}
		if err := tx.PutAlert(a); err != nil {
			return err
		}
		if err := tx.PutShare(Share{Mapping: m, FirstSeen: t0, LastSeen: t0, AlertID: a.ID}); err != nil {
			return err
		}
		m2 := m
		m2.ExternalPort, m2.Description = 51413, "torrent"
		if err := tx.PutShare(Share{Mapping: m2, FirstSeen: t0, LastSeen: t0}); err != nil {
			return err
		}
		d := &Digest{CreatedAt: t0, Items: []DigestItem{{ShareKey: ShareKey(m2.Key()), Mapping: m2}}}
		if err := tx.PutDigest(d); err != nil {
			return err
		}
		other := m
		other.Router = "http://192.168.1.1:5000/rootDesc.xml"
		return tx.PutShare(Share{Mapping: other, FirstSeen: t0, LastSeen: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAdoptRouterMovesSchema1Records(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorman.db")
	writeSchema1(t, path)
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("opening a schema 1 database: %v", err)
	}
	defer db.Close()

	// The description moved to another port since the old doorman
	// stopped: it is the same router.
	var got string
	if err := db.Update(func(tx *Tx) (err error) { got, err = tx.AdoptRouter(routerID, []string{routerUDN}); return err }); err != nil {
		t.Fatal(err)
	}
	if got != routerID {
		t.Fatalf("AdoptRouter = %q, want %q", got, routerID)
	}
	err = db.View(func(tx *Tx) error {
		r, ok, err := tx.Router(routerID, oldService)
		if err != nil || !ok || r.ID != routerID || !r.FirstSeen.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Errorf("router record = %+v, %v, %v; want the old one under the ID", r, ok, err)
		}
		if _, ok, _ := tx.Router(oldURL, oldService); ok {
			t.Error("the router is still stored under its URL")
		}
		shares, err := tx.Shares(routerID)
		if err != nil || len(shares) != 2 {
			t.Fatalf("shares under the ID = %d, %v; want 2", len(shares), err)
		}
		if old, _ := tx.Shares(oldURL); len(old) != 0 {
			t.Errorf("%d shares still under the URL", len(old))
		}
		s, ok, err := tx.Share(ShareKey(watcher.Key{Router: routerID, Service: oldService, Protocol: "TCP", ExternalPort: 8080}))
		if err != nil || !ok || s.AlertID == 0 || s.Mapping.Router != routerID {
			t.Fatalf("moved share = %+v, %v, %v", s, ok, err)
		}
		a, err := tx.Alert(s.AlertID)
		if err != nil || a.State != AlertPending || a.Share.Mapping.Router != routerID {
			t.Errorf("its pending question = %+v, %v; want it pending, on the ID", a, err)
		}
		d, err := tx.Digest(1)
		if err != nil || d.Items[0].Mapping.Router != routerID || d.Items[0].ShareKey != ShareKey(d.Items[0].Mapping.Key()) {
			t.Errorf("digest item = %+v, %v", d.Items, err)
		}
		if other, _ := tx.Shares("http://192.168.1.1:5000/rootDesc.xml"); len(other) != 1 {
			t.Errorf("the other router's share moved: %d left", len(other))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Once moved, the router is known, and a second look moves nothing.
	if err := db.Update(func(tx *Tx) (err error) { got, err = tx.AdoptRouter(routerID, nil); return err }); err != nil || got != routerID {
		t.Errorf("AdoptRouter again = %q, %v", got, err)
	}
	var schema uint64
	db.View(func(tx *Tx) error {
		schema = binary.BigEndian.Uint64(tx.tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	})
	if schema != SchemaVersion {
		t.Errorf("schema %d after opening, want %d", schema, SchemaVersion)
	}
}

func TestAdoptRouterIdentities(t *testing.T) {
	const (
		igd1UDN = "uuid:75802409-bccb-40e7-8e6c-aaaaaaaaaaaa"
		igd2UDN = "uuid:75802409-bccb-40e7-9f6c-aaaaaaaaaaaa"
		host    = "192.168.178.1"
	)
	id := func(udn string) string { return udn + "@" + host }
	tests := []struct {
		name   string
		stored []string // router identities stored before
		id     string
		udns   []string
		want   string
	}{
		{"a new router", nil, id(igd2UDN), []string{igd2UDN}, id(igd2UDN)},
		{"known under its identity", []string{id(igd2UDN)}, id(igd2UDN), []string{igd2UDN}, id(igd2UDN)},
		{"known under its twin's identity (FRITZ!Box IGD:1)", []string{id(igd1UDN), "uuid:x@10.0.0.1"}, id(igd2UDN), []string{igd2UDN, igd1UDN}, id(igd1UDN)},
		{"a new UUID at boot, the only router on the host", []string{id(igd1UDN)}, id("uuid:new"), []string{"uuid:new"}, id(igd1UDN)},
		{"two other routers on the host: a new one", []string{id(igd1UDN), id(igd2UDN)}, id("uuid:new"), []string{"uuid:new"}, id("uuid:new")},
		{"a router on another host is another router", []string{"uuid:x@10.0.0.1"}, id(igd2UDN), []string{igd2UDN, "uuid:x"}, id(igd2UDN)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTemp(t)
			err := db.Update(func(tx *Tx) error {
				for _, r := range tt.stored {
					if err := tx.PutRouter(Router{ID: r, Service: oldService}); err != nil {
						return err
					}
				}
				got, err := tx.AdoptRouter(tt.id, tt.udns)
				if got != tt.want {
					t.Errorf("AdoptRouter = %q, want %q", got, tt.want)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPutRouterNeedsAnID(t *testing.T) {
	db := openTemp(t)
	if err := db.Update(func(tx *Tx) error { return tx.PutRouter(Router{URL: oldURL, Service: oldService}) }); err == nil {
		t.Error("PutRouter stored a router without an ID")
	}
}

func TestRetireTwinServices(t *testing.T) {
	const (
		igd1 = "urn:schemas-upnp-org:service:WANIPConnection:1"
		igd2 = "urn:schemas-upnp-org:service:WANIPConnection:2"
	)
	db := openTemp(t)
	m := func(svc string, port uint16) watcher.Mapping {
		return watcher.Mapping{Router: routerID, Service: svc, Protocol: "TCP", ExternalPort: port, InternalClient: "192.168.178.20", InternalPort: port}
	}
	var askedTwice, askedOnce uint64
	err := db.Update(func(tx *Tx) error {
		// 32400 was listed through both descriptions, 8080 only through
		// the IGD:1 one.
		for _, s := range []Share{{Mapping: m(igd1, 32400)}, {Mapping: m(igd2, 32400)}, {Mapping: m(igd1, 8080)}} {
			a := &Alert{Share: s, State: AlertPending}
			if err := tx.PutAlert(a); err != nil {
				return err
			}
			s.AlertID = a.ID
			if s.Mapping.ExternalPort == 8080 {
				askedOnce = a.ID
			} else if s.Mapping.Service == igd1 {
				askedTwice = a.ID
			}
			if err := tx.PutShare(s); err != nil {
				return err
			}
		}
		if err := tx.PutRouter(Router{ID: routerID, Service: igd1}); err != nil {
			return err
		}
		return tx.RetireTwinServices(routerID, igd2, []string{igd1})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *Tx) error {
		shares, _ := tx.Shares(routerID)
		if len(shares) != 2 {
			t.Errorf("%d shares, want 2: %+v", len(shares), shares)
		}
		for _, s := range shares {
			if s.Mapping.Service != igd2 {
				t.Errorf("share %d still on %s", s.Mapping.ExternalPort, s.Mapping.Service)
			}
		}
		for _, id := range []uint64{askedTwice, askedOnce} {
			if a, err := tx.Alert(id); err != nil || a.Share.Mapping.Service != igd2 {
				t.Errorf("alert %d: %+v, %v; want it on %s", id, a.Share.Mapping, err, igd2)
			}
		}
		if _, ok, _ := tx.Router(routerID, igd1); ok {
			t.Error("the twin service is still a known service")
		}
		if _, ok, _ := tx.Router(routerID, igd2); !ok {
			t.Error("the table listed through the twin is not known")
		}
		return nil
	})
}
