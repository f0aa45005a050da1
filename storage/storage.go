// Package storage keeps doorman's state in a bbolt file: the shares seen on
// each router, the trust and block rules, the alerts asked in the chat and
// the outbox of messages not yet confirmed by Telegram.
//
// Values are stored as JSON and decoded into fresh values, so nothing a
// caller holds points into bbolt's memory map, which is only valid inside
// the transaction.
package storage

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this build writes. A file written by a newer
// doorman is refused rather than misread.
const SchemaVersion = 1

// DefaultOpenTimeout is how long Open waits for another process to release
// the file before it gives up.
const DefaultOpenTimeout = 2 * time.Second

var (
	// ErrInUse means another process (usually a second doorman) holds the
	// database file.
	ErrInUse = errors.New("database is in use by another process")
	// ErrSchema means the file was written by a newer doorman.
	ErrSchema = errors.New("database was written by a newer doorman")
	// ErrCorrupt means the file is not a doorman database or is damaged.
	ErrCorrupt = errors.New("database file is damaged or not a doorman database")
)

var (
	bucketMeta    = []byte("meta")
	bucketShares  = []byte("shares")
	bucketRules   = []byte("rules")
	bucketAlerts  = []byte("alerts")
	bucketOutbox  = []byte("outbox")
	bucketRouters = []byte("routers")
	bucketDigests = []byte("digests")

	keySchema = []byte("schema")
)

// Options configures Open.
type Options struct {
	// Timeout bounds the wait for the file lock (default 2 s).
	Timeout time.Duration
}

// DB is an open doorman database.
type DB struct {
	bolt *bolt.DB
	path string
}

// Open opens or creates the database at path. A second process opening the
// same file gets ErrInUse within the timeout instead of waiting forever.
func Open(ctx context.Context, path string, opts Options) (db *DB, err error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultOpenTimeout
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(dl)), time.Millisecond)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("storage: unable to create the directory of %s: %w", path, err)
		}
	}
	// bbolt panics on some damaged files instead of returning an error; a
	// damaged state file must give the owner a message, not a stack trace.
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("storage: unable to open %s: %w (%v)", path, ErrCorrupt, r)
		}
	}()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("storage: unable to open %s: %w (waited %s; is another doorman running?)", path, ErrInUse, timeout)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, fmt.Errorf("storage: unable to open %s: %w: %w", path, ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("storage: unable to open %s: %w", path, err)
	}
	db = &DB{bolt: b, path: path}
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) init() error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketShares, bucketRules, bucketAlerts, bucketOutbox, bucketRouters, bucketDigests} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if err := indexPending(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("%w: schema version has %d bytes", ErrCorrupt, len(v))
			}
			if n := binary.BigEndian.Uint64(v); n > SchemaVersion {
				return fmt.Errorf("%w (schema %d, this build knows %d)", ErrSchema, n, SchemaVersion)
			}
		}
		return meta.Put(keySchema, u64(SchemaVersion))
	})
	if err != nil {
		return fmt.Errorf("storage: unable to prepare %s: %w", db.path, err)
	}
	return nil
}

// Path returns the file the database lives in.
func (db *DB) Path() string { return db.path }

// Close closes the file and releases the lock.
func (db *DB) Close() error {
	return db.bolt.Close()
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(tx *Tx) error) error {
	return db.wrap(db.bolt.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) }))
}

// Update runs fn in a read-write transaction; an error from fn rolls back
// everything it wrote.
func (db *DB) Update(fn func(tx *Tx) error) error {
	return db.wrap(db.bolt.Update(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) }))
}

func (db *DB) wrap(err error) error {
	if err == nil {
		return nil
	}
	var se *storeError
	if errors.As(err, &se) {
		return fmt.Errorf("storage: %s: %w", db.path, err)
	}
	return err
}

// storeError marks failures of the store itself, as opposed to errors a
// caller's fn returned, so that only those get the file name added.
type storeError struct {
	op  string
	err error
}

func (e *storeError) Error() string { return "unable to " + e.op + ": " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// Tx is a transaction; its methods must not be used after the function given
// to View or Update returned.
type Tx struct {
	tx *bolt.Tx
}

func (t *Tx) get(bucket, key []byte, v any) (bool, error) {
	raw := t.tx.Bucket(bucket).Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, &storeError{"decode " + string(bucket) + " entry " + fmt.Sprintf("%q", key), err}
	}
	return true, nil
}

func (t *Tx) put(bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return &storeError{"encode " + string(bucket) + " entry", err}
	}
	if err := t.tx.Bucket(bucket).Put(key, raw); err != nil {
		return &storeError{"write " + string(bucket) + " entry", err}
	}
	return nil
}

func (t *Tx) del(bucket, key []byte) error {
	if err := t.tx.Bucket(bucket).Delete(key); err != nil {
		return &storeError{"delete " + string(bucket) + " entry", err}
	}
	return nil
}

func (t *Tx) nextID(bucket []byte) (uint64, error) {
	id, err := t.tx.Bucket(bucket).NextSequence()
	if err != nil {
		return 0, &storeError{"number " + string(bucket) + " entry", err}
	}
	return id, nil
}

// each decodes every value of bucket in key order into a fresh T.
func each[T any](t *Tx, bucket []byte, fn func(key []byte, v T) error) error {
	return t.tx.Bucket(bucket).ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return &storeError{"decode " + string(bucket) + " entry", err}
		}
		return fn(k, v)
	})
}

// Count returns the number of entries of each kind, for status and metrics.
func (t *Tx) Count() (shares, rules, alerts, outbox int) {
	return t.tx.Bucket(bucketShares).Stats().KeyN,
		t.tx.Bucket(bucketRules).Stats().KeyN,
		t.tx.Bucket(bucketAlerts).Stats().KeyN,
		t.tx.Bucket(bucketOutbox).Stats().KeyN
}

// Meta reads a small value doorman keeps between runs (the Telegram update
// offset, …); ok is false when it was never set.
func (t *Tx) Meta(key string, v any) (ok bool, err error) {
	return t.get(bucketMeta, []byte("m:"+key), v)
}

// SetMeta stores a small value under key.
func (t *Tx) SetMeta(key string, v any) error {
	return t.put(bucketMeta, []byte("m:"+key), v)
}
