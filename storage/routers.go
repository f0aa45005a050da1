package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/doorman-upnp/doorman/watcher"
)

// Router remembers that doorman has listed a router's service before, which
// tells a first start (report what is there once) from a later one.
type Router struct {
	// ID is the router's identity (watcher.RouterID: its UDN and host),
	// under which its shares are stored.
	ID string `json:",omitempty"`
	// URL is the description URL a router was stored under before
	// routers had identities (schema 1); AdoptRouter moves such records
	// to the router's ID the first time it is seen.
	URL       string `json:",omitempty"`
	Service   string
	FirstSeen time.Time
	LastList  time.Time
}

// Router returns what doorman remembers of a router's service; router is
// its identity.
func (t *Tx) Router(router, service string) (Router, bool, error) {
	var r Router
	ok, err := t.get(bucketRouters, []byte(router+"\x00"+service), &r)
	return r, ok, err
}

// PutRouter stores r under its ID.
func (t *Tx) PutRouter(r Router) error {
	if r.ID == "" {
		return &storeError{"write routers entry", errors.New("router without an ID")}
	}
	return t.put(bucketRouters, []byte(r.ID+"\x00"+r.Service), r)
}

// AdoptRouter returns the identity under which the router with identity id
// and device UDNs udns is stored, moving what an older doorman stored for
// it there first.
//
//   - A router stored under id is id.
//   - A router on the same host stored under one of udns is that one:
//     descriptions of one router (the FRITZ!Box's IGD:1 and IGD:2 pair)
//     have different root UDNs, and either may be the one watched.
//   - Else the only router stored on the host is that one: some routers
//     make up a new UUID at every boot, and a restart must not ask about
//     every share again.
//   - Shares, routers, alerts and digests an older doorman stored under a
//     description URL on the host (schema 1) are moved to the identity
//     found: a description that moved to another port, or was written
//     another way, is the same router.
//
// See RetireTwinServices for the services of a router's twin descriptions.
func (t *Tx) AdoptRouter(id string, udns []string) (string, error) {
	if t.hasRouter(id) {
		return id, nil
	}
	host := watcher.RouterHost(id)
	var byID []string
	seen := map[string]bool{}
	c := t.tx.Bucket(bucketRouters).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		r, _, _ := bytes.Cut(k, []byte{0})
		router := string(r)
		if seen[router] || watcher.RouterHost(router) != host {
			continue
		}
		seen[router] = true
		if !strings.Contains(router, "://") {
			byID = append(byID, router)
		}
	}
	target := id
	switch i := slices.IndexFunc(byID, func(r string) bool { return slices.Contains(udns, watcher.RouterUDN(r)) }); {
	case i >= 0:
		target = byID[i]
	case len(byID) == 1:
		target = byID[0]
	}
	if err := t.moveURLKeyed(host, target); err != nil {
		return "", err
	}
	return target, nil
}

func (t *Tx) hasRouter(id string) bool {
	prefix := []byte(id + "\x00")
	k, _ := t.tx.Bucket(bucketRouters).Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// urlKeyedOn reports whether router is a description URL (schema 1) on
// host.
func urlKeyedOn(router, host string) bool {
	return strings.Contains(router, "://") && watcher.RouterHost(router) == host
}

// moveURLKeyed moves every record stored under a description URL on host
// to the router identity target.
func (t *Tx) moveURLKeyed(host, target string) error {
	var routers []Router
	var routerKeys [][]byte
	if err := each(t, bucketRouters, func(k []byte, r Router) error {
		if r.ID == "" && urlKeyedOn(r.URL, host) {
			routers = append(routers, r)
			routerKeys = append(routerKeys, slices.Clone(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for i, r := range routers {
		if err := t.del(bucketRouters, routerKeys[i]); err != nil {
			return err
		}
		r.ID = target
		if _, ok, err := t.Router(target, r.Service); err != nil || ok {
			if err != nil {
				return err
			}
			continue
		}
		if err := t.PutRouter(r); err != nil {
			return err
		}
	}

	var shares []Share
	var shareKeys [][]byte
	if err := each(t, bucketShares, func(k []byte, s Share) error {
		if urlKeyedOn(s.Mapping.Router, host) {
			shares = append(shares, s)
			shareKeys = append(shareKeys, slices.Clone(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for i, s := range shares {
		if err := t.del(bucketShares, shareKeys[i]); err != nil {
			return err
		}
		s.Mapping.Router = target
		if err := t.putUnlessTaken(s); err != nil {
			return err
		}
	}

	if err := rewriteEach(t, bucketAlerts, func(a *Alert) bool {
		changed := false
		if urlKeyedOn(a.Share.Mapping.Router, host) {
			a.Share.Mapping.Router, changed = target, true
		}
		if a.Previous != nil && urlKeyedOn(a.Previous.Router, host) {
			a.Previous.Router, changed = target, true
		}
		return changed
	}); err != nil {
		return err
	}
	return rewriteEach(t, bucketDigests, func(d *Digest) bool {
		changed := false
		for i := range d.Items {
			it := &d.Items[i]
			if urlKeyedOn(it.Mapping.Router, host) {
				it.Mapping.Router = target
				it.ShareKey = ShareKey(it.Mapping.Key())
				changed = true
			}
		}
		return changed
	})
}

// rewriteEach decodes every value of bucket and writes back those fn
// changed, under the same key.
func rewriteEach[T any](t *Tx, bucket []byte, fn func(*T) bool) error {
	type entry struct {
		key []byte
		v   *T
	}
	var changed []entry
	err := t.tx.Bucket(bucket).ForEach(func(k, raw []byte) error {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return &storeError{"decode " + string(bucket) + " entry", err}
		}
		if fn(v) {
			changed = append(changed, entry{slices.Clone(k), v})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range changed {
		if err := t.put(bucket, e.key, e.v); err != nil {
			return err
		}
	}
	return nil
}

// RetireTwinServices moves the shares and questions of router stored under
// twins, the service types of its twin descriptions (the FRITZ!Box's
// WANIPConnection:1 next to its WANIPConnection:2), to service, the one
// watched: they are rows of one table. A share stored under both is kept
// once, as service has it. Without this, shares listed through the twin
// (by an older doorman, or in a run that found only the twin) would never
// be listed again, and stay open in doorman's eyes for ever.
func (t *Tx) RetireTwinServices(router, service string, twins []string) error {
	if len(twins) == 0 {
		return nil
	}
	shares, err := t.Shares(router)
	if err != nil {
		return err
	}
	for _, s := range shares {
		if !slices.Contains(twins, s.Mapping.Service) {
			continue
		}
		if err := t.DeleteShare(ShareKey(s.Mapping.Key())); err != nil {
			return err
		}
		s.Mapping.Service = service
		if err := t.putUnlessTaken(s); err != nil {
			return err
		}
	}
	// The twin's record says that the table was listed before: a first
	// listing through service is not a first look at the router.
	_, known, err := t.Router(router, service)
	if err != nil {
		return err
	}
	for _, twin := range twins {
		r, ok, err := t.Router(router, twin)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if !known {
			r.ID, r.Service, known = router, service, true
			if err := t.PutRouter(r); err != nil {
				return err
			}
		}
		if err := t.del(bucketRouters, []byte(router+"\x00"+twin)); err != nil {
			return err
		}
	}
	return rewriteEach(t, bucketAlerts, func(a *Alert) bool {
		if a.Share.Mapping.Router != router || !slices.Contains(twins, a.Share.Mapping.Service) {
			return false
		}
		a.Share.Mapping.Service = service
		if a.Previous != nil {
			a.Previous.Service = service
		}
		return true
	})
}

// putUnlessTaken stores a share under its key unless one is stored there
// already: when two records of one share become one, the one already under
// the new key wins.
func (t *Tx) putUnlessTaken(s Share) error {
	if _, ok, err := t.Share(ShareKey(s.Mapping.Key())); err != nil || ok {
		return err
	}
	return t.PutShare(s)
}
