package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// errBudget stops the walk of a file too big to check in time.
var errBudget = errors.New("check budget spent")

// check looks at every page and value of the file before doorman relies on
// it: bbolt has no page checksums, so a garbled page shows only when it is
// read, as a panic in the middle of a listing. It walks every bucket itself
// (any panic or memory fault there is damage), checks that every value is
// JSON, and then runs bbolt's own consistency check (free list, page
// references, key order), in the time left of budget.
func (db *DB) check(ctx context.Context, budget time.Duration) error {
	start := time.Now()
	deadline := start.Add(budget)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	var problem error
	err := db.bolt.View(func(tx *bolt.Tx) (err error) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("reading it failed: %v", r)
			}
		}()
		n := 0
		walkErr := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return walkBucket(b, name, nil, func() error {
				if n++; n%512 == 0 && time.Now().After(deadline) {
					return errBudget
				}
				return nil
			})
		})
		if walkErr != nil {
			return walkErr
		}
		// bbolt's check takes a few times as long as the walk; run it
		// only if it fits in what is left.
		if time.Since(start) > budget/4 {
			return nil
		}
		for cerr := range tx.Check() {
			if problem == nil {
				problem = cerr
			}
		}
		return nil
	})
	if problem == nil && !errors.Is(err, errBudget) {
		problem = err
	}
	if problem != nil {
		return fmt.Errorf("storage: %s: %w: %w", db.path, ErrDamaged, problem)
	}
	return nil
}

// walkBucket reads every entry of b (named path, for messages) and its
// nested buckets, and calls tick for each.
func walkBucket(b *bolt.Bucket, name []byte, parent []byte, tick func() error) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := tick(); err != nil {
			return err
		}
		if v == nil {
			child := b.Bucket(k)
			if child == nil {
				return fmt.Errorf("bucket %s: entry %q is neither a value nor a bucket", name, k)
			}
			if err := walkBucket(child, k, name, tick); err != nil {
				return err
			}
			continue
		}
		if err := checkValue(name, parent, k, v); err != nil {
			return err
		}
	}
	return nil
}

// jsonBuckets hold JSON values only (Tx.put); meta holds JSON under "m:"
// keys. Other buckets, and nested ones, are read but their values not
// judged: a later doorman may keep other kinds of value there.
var jsonBuckets = [][]byte{bucketShares, bucketRules, bucketAlerts, bucketOutbox, bucketRouters, bucketDigests}

// checkValue tells whether a stored value looks as doorman wrote it.
func checkValue(bucket, parent, key, v []byte) error {
	if parent != nil {
		return nil
	}
	isJSON := bytes.Equal(bucket, bucketMeta) && bytes.HasPrefix(key, []byte("m:"))
	for _, b := range jsonBuckets {
		isJSON = isJSON || bytes.Equal(bucket, b)
	}
	if isJSON && !json.Valid(v) {
		return fmt.Errorf("bucket %s: entry %q is not a value doorman wrote", bucket, printableKey(key))
	}
	return nil
}

// printableKey shortens a key for a message; keys are IDs or share keys.
func printableKey(k []byte) string {
	if len(k) > 64 {
		k = k[:64]
	}
	return string(bytes.ReplaceAll(k, []byte{0}, []byte{' '}))
}
