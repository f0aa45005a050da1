package approvals

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// DefaultStaleAfter is how long a share may stay open before the digest
// asks whether it is still needed.
const DefaultStaleAfter = 14 * 24 * time.Hour

// DigestPager spreads the entries of a digest over pages that each fit one
// chat message, in every state their entries can reach by a press. How long
// an entry is in the chat is for bot to know, which words it; approvals
// writes no chat text.
type DigestPager interface {
	// Paginate returns the page of each entry of d, the items first, then
	// the rules: starting at 0, in order, never skipping a page.
	Paginate(d storage.Digest) []int
}

// fallbackPageEntries is the page size without a DigestPager (tests, the
// terminal, which sends no digest), or when it answers something unusable.
const fallbackPageEntries = 8

// Presence tells when a device was last seen on the LAN, where doorman can
// tell; ok is false when it cannot.
type Presence interface {
	LastSeen(ip string) (t time.Time, ok bool)
}

// staleReasons says why a share is worth closing, or nothing.
func (e *Engine) staleReasons(s storage.Share, now time.Time) []storage.StaleReason {
	var rs []storage.StaleReason
	age := now.Sub(s.FirstSeen)
	if age > e.staleAfter {
		rs = append(rs, storage.StaleReason{Kind: "old", OpenFor: age})
	}
	// A share opened today is not forgotten yet, whatever its lease.
	if age >= 24*time.Hour {
		lease := s.Mapping.LeaseDuration
		switch {
		case lease <= 0:
			rs = append(rs, storage.StaleReason{Kind: "permanent"})
		case lease > 7*24*time.Hour && lease > 10*age:
			rs = append(rs, storage.StaleReason{Kind: "long-lease", OpenFor: age, Lease: lease})
		}
	}
	if e.presence != nil {
		if seen, ok := e.presence.LastSeen(s.Mapping.InternalClient); ok && now.Sub(seen) > 24*time.Hour {
			rs = append(rs, storage.StaleReason{Kind: "device-away", AwayFor: now.Sub(seen)})
		}
	}
	return rs
}

// MakeDigest collects the stale shares and idle rules, stores them as a
// digest and queues its pages. With skipEmpty, an all-clear digest is not
// stored or sent; the returned digest then has no ID.
func (e *Engine) MakeDigest(ctx context.Context, due time.Time, skipEmpty bool) (storage.Digest, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	chat := e.Chat()
	d := storage.Digest{CreatedAt: now, Due: due, ChatID: chat}
	if chat == 0 {
		e.logger.Info("no chat paired yet; no digest sent")
		return d, nil
	}
	err := e.db.Update(func(tx *storage.Tx) error {
		d.Items, d.Rules, d.OpenShares = nil, nil, 0
		shares, err := tx.Shares("")
		if err != nil {
			return err
		}
		for _, s := range shares {
			if s.Gone() {
				continue
			}
			d.OpenShares++
			if now.Before(s.SnoozedUntil) {
				continue
			}
			reasons := e.staleReasons(s, now)
			if len(reasons) == 0 {
				continue
			}
			it := storage.DigestItem{ShareKey: storage.ShareKey(s.Mapping.Key()), Mapping: s.Mapping, OpenFor: now.Sub(s.FirstSeen), Reasons: reasons}
			if r, ok := RiskOf(s.Mapping.InternalPort); ok {
				it.Risk = r.Service
			}
			d.Items = append(d.Items, it)
		}
		sort.SliceStable(d.Items, func(i, j int) bool {
			a, b := d.Items[i], d.Items[j]
			if (a.Risk != "") != (b.Risk != "") {
				return a.Risk != ""
			}
			return a.OpenFor > b.OpenFor
		})
		rules, err := tx.Rules()
		if err != nil {
			return err
		}
		for _, r := range rules {
			last := r.LastMatched
			if last.Before(r.CreatedAt) {
				last = r.CreatedAt
			}
			if idle := now.Sub(last); idle > e.staleAfter {
				d.Rules = append(d.Rules, storage.DigestRule{RuleID: r.ID, Kind: r.Kind, Service: r.Service, IdleFor: idle})
			}
		}
		if skipEmpty && len(d.Items) == 0 && len(d.Rules) == 0 {
			return nil
		}
		e.paginate(&d)
		if err := tx.PutDigest(&d); err != nil {
			return err
		}
		for p := range d.Pages {
			if err := tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxDigest, DigestID: d.ID, Page: p, ChatID: chat, CreatedAt: now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return d, fmt.Errorf("approvals: unable to make the digest: %w", err)
	}
	if d.ID != 0 {
		e.wake()
	}
	e.logger.Info("digest", "stale", len(d.Items), "idle_rules", len(d.Rules), "open", d.OpenShares, "sent", d.ID != 0)
	return d, nil
}

// paginate spreads items, then rules, over pages as the pager says.
func (e *Engine) paginate(d *storage.Digest) {
	n := len(d.Items) + len(d.Rules)
	var pages []int
	if e.pager != nil {
		pages = e.pager.Paginate(*d)
	}
	if !validPages(pages, n) {
		if e.pager != nil {
			e.logger.Error("the digest pager answered unusable pages; using pages of a few entries", "entries", n, "pages", len(pages))
		}
		pages = make([]int, n)
		for i := range pages {
			pages[i] = i / fallbackPageEntries
		}
	}
	d.Pages = 1
	for i := range d.Items {
		d.Items[i].Page = pages[i]
	}
	for i := range d.Rules {
		d.Rules[i].Page = pages[len(d.Items)+i]
	}
	if n > 0 {
		d.Pages = pages[n-1] + 1
	}
	d.MessageIDs = make([]int, d.Pages)
}

// validPages reports whether pages gives n entries pages from 0 on, in
// order, with none left empty.
func validPages(pages []int, n int) bool {
	if len(pages) != n {
		return false
	}
	prev := 0
	for i, p := range pages {
		if (i == 0 && p != 0) || p < prev || p > prev+1 {
			return false
		}
		prev = p
	}
	return true
}

// ErrDigestItem means a digest button names nothing that can be acted on.
var ErrDigestItem = errors.New("no such entry in this digest")

// digestAction loads a digest entry, runs act on it outside the lock when
// it needs the router, and stores the result with an edit of its page.
func (e *Engine) loadDigest(id uint64) (storage.Digest, error) {
	var d storage.Digest
	err := e.db.View(func(tx *storage.Tx) (err error) { d, err = tx.Digest(id); return err })
	if errors.Is(err, storage.ErrNotFound) {
		return d, ErrDigestItem
	}
	return d, err
}

// CloseStale closes the share of digest item idx on the router. It does not
// make a block rule: the owner only cleans up, and the device may ask again.
func (e *Engine) CloseStale(ctx context.Context, digestID uint64, idx int, by storage.User) (storage.DigestItem, error) {
	d, err := e.loadDigest(digestID)
	if err != nil {
		return storage.DigestItem{}, err
	}
	if idx < 0 || idx >= len(d.Items) {
		return storage.DigestItem{}, ErrDigestItem
	}
	it := d.Items[idx]
	if it.State != storage.DigestOpen && it.State != storage.DigestRefused {
		return it, ErrDecided
	}
	// As in Decide, the router is asked without the engine's lock.
	release, ok := e.claim(storage.ShareKey(it.Mapping.Key()))
	if !ok {
		return it, ErrInProgress
	}
	defer release()
	var open bool
	if err := e.db.View(func(tx *storage.Tx) (err error) { open, err = stillOpen(tx, it.Mapping); return err }); err != nil {
		return it, fmt.Errorf("approvals: unable to read a stale share: %w", err)
	}
	var derr error
	if open {
		derr = e.router.DeleteListedMapping(ctx, it.Mapping)
	}
	if errors.Is(derr, watcher.ErrMappingChanged) {
		// Another device's share holds the port now; this one is gone.
		open, derr = false, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	switch {
	case !open:
		it.State, it.By, it.Note = storage.DigestGone, by, storage.Note{}
	case derr == nil:
		it.State, it.By, it.Note = storage.DigestClosed, by, storage.Note{}
	case errors.Is(derr, watcher.ErrDeleteRefused):
		it.State, it.Note = storage.DigestRefused, closeNote(derr)
	default:
		it.Note = closeNote(derr)
	}
	err = e.db.Update(func(tx *storage.Tx) error {
		cur, err := tx.Digest(digestID)
		if err != nil {
			return err
		}
		if st := cur.Items[idx].State; st != storage.DigestOpen && st != storage.DigestRefused {
			// Kept or closed by another press meanwhile.
			it = cur.Items[idx]
			return ErrDecided
		}
		if !it.Note.IsZero() {
			// A page of several entries has no room for a full
			// explanation.
			if it.Note, err = e.explainApart(tx, storage.NoticeStaleNotClosed, cur.ChatID, it.Mapping, it.Note); err != nil {
				return err
			}
		}
		cur.Items[idx] = it
		if derr == nil && open {
			if err := e.markGone(tx, it.Mapping, now); err != nil {
				return err
			}
		}
		if err := tx.PutDigest(&cur); err != nil {
			return err
		}
		return e.enqueueDigestEdit(tx, cur, it.Page)
	})
	if errors.Is(err, ErrDecided) {
		if open && derr == nil {
			e.logger.Info("closed a stale share that was kept meanwhile", "share", it.Mapping.Key().String(), "digest", digestID, "state", string(it.State))
		}
		return it, ErrDecided
	}
	if err != nil {
		return it, fmt.Errorf("approvals: unable to record closing a stale share: %w", err)
	}
	e.wake()
	if derr != nil {
		if errors.Is(derr, watcher.ErrDeleteRefused) {
			return it, &RefusedError{Key: it.Mapping.Key(), Err: derr}
		}
		return it, fmt.Errorf("approvals: unable to close %s: %w", it.Mapping.Key(), derr)
	}
	e.logger.Info("closed a stale share", "share", it.Mapping.Key().String(), "client", it.Mapping.InternalClient, "by", by.ID)
	return it, nil
}

// KeepStale snoozes the share of digest item idx for the stale period.
func (e *Engine) KeepStale(ctx context.Context, digestID uint64, idx int, by storage.User) (storage.DigestItem, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	var it storage.DigestItem
	err := e.db.Update(func(tx *storage.Tx) error {
		d, err := tx.Digest(digestID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && (idx < 0 || idx >= len(d.Items))) {
			return ErrDigestItem
		}
		if err != nil {
			return err
		}
		it = d.Items[idx]
		if it.State != storage.DigestOpen && it.State != storage.DigestRefused {
			return ErrDecided
		}
		open, err := stillOpen(tx, it.Mapping)
		if err != nil {
			return err
		}
		it.State, it.By, it.Note = storage.DigestGone, by, storage.Note{}
		if open {
			// Only the share the digest listed; another device that took
			// the port since is not snoozed with it.
			s, _, err := tx.Share(it.ShareKey)
			if err != nil {
				return err
			}
			s.SnoozedUntil = now.Add(e.staleAfter)
			if err := tx.PutShare(s); err != nil {
				return err
			}
			it.State = storage.DigestKept
		}
		d.Items[idx] = it
		if err := tx.PutDigest(&d); err != nil {
			return err
		}
		return e.enqueueDigestEdit(tx, d, it.Page)
	})
	if err != nil {
		return it, err
	}
	e.wake()
	return it, nil
}

// ForgetIdleRule forgets rule idx of a digest and marks it in the digest.
func (e *Engine) ForgetIdleRule(ctx context.Context, digestID uint64, idx int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.db.Update(func(tx *storage.Tx) error {
		d, err := tx.Digest(digestID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && (idx < 0 || idx >= len(d.Rules))) {
			return ErrDigestItem
		}
		if err != nil {
			return err
		}
		if d.Rules[idx].Forgotten {
			return ErrDecided
		}
		if err := tx.DeleteRule(d.Rules[idx].RuleID); err != nil {
			return err
		}
		d.Rules[idx].Forgotten = true
		if err := tx.PutDigest(&d); err != nil {
			return err
		}
		return e.enqueueDigestEdit(tx, d, d.Rules[idx].Page)
	})
	if err != nil {
		return err
	}
	e.wake()
	return nil
}

// RiskyOpen returns the indexes of the risky items of a digest still open.
func (e *Engine) RiskyOpen(digestID uint64) ([]int, error) {
	d, err := e.loadDigest(digestID)
	if err != nil {
		return nil, err
	}
	var idx []int
	for i, it := range d.Items {
		if it.Risk != "" && (it.State == storage.DigestOpen || it.State == storage.DigestRefused) {
			idx = append(idx, i)
		}
	}
	return idx, nil
}

func (e *Engine) enqueueDigestEdit(tx *storage.Tx, d storage.Digest, page int) error {
	return tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxDigestEdit, DigestID: d.ID, Page: page, ChatID: d.ChatID, CreatedAt: e.now()})
}

// StaleAfterPeriod returns how long a share may stay open before the digest
// lists it; Keep snoozes a share for as long.
func (e *Engine) StaleAfterPeriod() time.Duration { return e.staleAfter }
