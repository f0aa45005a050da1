package storage

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketPending indexes the alerts whose question is open, by ID, so that
// answering one touches the open questions and not the whole history.
var bucketPending = []byte("pending")

// indexPending builds the index of open questions in a database written
// before it existed; a database that has it is left alone.
func indexPending(tx *bolt.Tx) error {
	if tx.Bucket(bucketPending) != nil {
		return nil
	}
	idx, err := tx.CreateBucket(bucketPending)
	if err != nil || tx.Bucket(bucketAlerts) == nil {
		return err
	}
	t := &Tx{tx: tx}
	return each(t, bucketAlerts, func(k []byte, a Alert) error {
		if a.State != AlertPending {
			return nil
		}
		return idx.Put(k, nil)
	})
}

// indexAlert keeps the index of open questions in step with a stored alert.
func (t *Tx) indexAlert(a *Alert) error {
	idx := t.tx.Bucket(bucketPending)
	if idx == nil {
		// An older file opened read-only: nothing is written anyway.
		return nil
	}
	var err error
	if a.State == AlertPending {
		err = idx.Put(u64(a.ID), nil)
	} else {
		err = idx.Delete(u64(a.ID))
	}
	if err != nil {
		return &storeError{"index alert " + fmt.Sprint(a.ID), err}
	}
	return nil
}

// PendingAlerts returns the alerts whose question is open, oldest first.
func (t *Tx) PendingAlerts() ([]Alert, error) {
	var out []Alert
	idx := t.tx.Bucket(bucketPending)
	if idx == nil {
		// An older file opened read-only, without the index.
		err := each(t, bucketAlerts, func(_ []byte, a Alert) error {
			if a.State == AlertPending {
				out = append(out, a)
			}
			return nil
		})
		return out, err
	}
	c := idx.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		a, err := t.Alert(binary.BigEndian.Uint64(k))
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Digests returns every digest, oldest first.
func (t *Tx) Digests() ([]Digest, error) {
	var out []Digest
	err := each(t, bucketDigests, func(_ []byte, d Digest) error {
		out = append(out, d)
		return nil
	})
	return out, err
}

// DeleteDigest forgets a digest; its buttons then say so.
func (t *Tx) DeleteDigest(id uint64) error {
	return t.del(bucketDigests, u64(id))
}

// AlertTotals counts what pruned alerts were, so that the metrics' counts
// of alerts sent and decisions made do not fall when history is pruned.
type AlertTotals struct {
	Sent      int
	Decisions map[AlertState]int `json:",omitempty"`
}

const metaPrunedAlerts = "pruned_alerts"

// PrunedAlerts returns the totals of the alerts pruned so far.
func (t *Tx) PrunedAlerts() (AlertTotals, error) {
	var tot AlertTotals
	_, err := t.Meta(metaPrunedAlerts, &tot)
	return tot, err
}

// PruneAlert deletes an alert that is no longer needed, adding it to the
// pruned totals.
func (t *Tx) PruneAlert(a Alert) error {
	tot, err := t.PrunedAlerts()
	if err != nil {
		return err
	}
	if a.MessageID != 0 {
		tot.Sent++
	}
	if a.State == AlertAllowed || a.State == AlertBlocked {
		if tot.Decisions == nil {
			tot.Decisions = map[AlertState]int{}
		}
		tot.Decisions[a.State]++
	}
	if err := t.SetMeta(metaPrunedAlerts, tot); err != nil {
		return err
	}
	return t.DeleteAlert(a.ID)
}
