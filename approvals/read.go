package approvals

import (
	"context"
	"errors"
	"fmt"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// This file is what the chat may read: the shares, rules, alerts and
// digests as the engine sees them. Reads take no lock; each is one
// consistent view of the database.

// OpenShare is a share the router lists now, with where it stands.
type OpenShare struct {
	storage.Share
	// Rule is the kind of rule that covers the share now, "" if none.
	Rule storage.RuleKind
	// Waiting is true while the share's question waits for an answer.
	Waiting bool
}

// OpenShares returns the shares the router lists now, in storage order
// (router, then key).
func (e *Engine) OpenShares(ctx context.Context) ([]OpenShare, error) {
	var out []OpenShare
	err := e.db.View(func(tx *storage.Tx) error {
		out = nil
		shares, err := tx.Shares("")
		if err != nil {
			return err
		}
		rules, err := tx.Rules()
		if err != nil {
			return err
		}
		for _, s := range shares {
			if s.Gone() {
				continue
			}
			o := OpenShare{Share: s, Rule: e.coveringRule(rules, s.Mapping)}
			if s.AlertID != 0 {
				a, err := tx.Alert(s.AlertID)
				if err != nil && !errors.Is(err, storage.ErrNotFound) {
					return err
				}
				o.Waiting = err == nil && a.State == storage.AlertPending
			}
			out = append(out, o)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("approvals: unable to read the open shares: %w", err)
	}
	return out, nil
}

// coveringRule returns the kind of the rule that covers a mapping now,
// following the device by its MAC like the listing does.
func (e *Engine) coveringRule(rules []storage.Rule, m watcher.Mapping) storage.RuleKind {
	if i, ok := ruleFor(rules, m, e.mac(m.InternalClient), e.appName); ok {
		return rules[i].Kind
	}
	return ""
}

// Rules returns the rules of one kind, oldest first.
func (e *Engine) Rules(ctx context.Context, kind storage.RuleKind) ([]storage.Rule, error) {
	var out []storage.Rule
	err := e.db.View(func(tx *storage.Tx) error {
		all, err := tx.Rules()
		out = nil
		for _, r := range all {
			if r.Kind == kind {
				out = append(out, r)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("approvals: unable to read the rules: %w", err)
	}
	return out, nil
}

// Alert returns an alert; ErrUnknownAlert when there is none with id.
func (e *Engine) Alert(ctx context.Context, id uint64) (storage.Alert, error) {
	var a storage.Alert
	err := e.db.View(func(tx *storage.Tx) (err error) { a, err = tx.Alert(id); return err })
	if errors.Is(err, storage.ErrNotFound) {
		return a, ErrUnknownAlert
	}
	if err != nil {
		return a, fmt.Errorf("approvals: unable to read alert %d: %w", id, err)
	}
	return a, nil
}

// Digest returns a digest; ErrDigestItem when there is none with id.
func (e *Engine) Digest(ctx context.Context, id uint64) (storage.Digest, error) {
	d, err := e.loadDigest(id)
	if err != nil && !errors.Is(err, ErrDigestItem) {
		return d, fmt.Errorf("approvals: unable to read digest %d: %w", id, err)
	}
	return d, err
}

// Counts says how many shares are open and how many rules there are.
func (e *Engine) Counts(ctx context.Context) (open, rules int, err error) {
	err = e.db.View(func(tx *storage.Tx) error {
		shares, err := tx.Shares("")
		open = 0
		for _, s := range shares {
			if !s.Gone() {
				open++
			}
		}
		_, rules, _, _ = tx.Count()
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("approvals: unable to count the shares: %w", err)
	}
	return open, rules, nil
}
