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
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this build writes. A file written by a newer
// doorman is refused rather than misread.
//
//   - 1: shares, routers and alerts keyed on the router's description URL;
//   - 2: keyed on the router's identity (watcher.RouterID). Schema 1
//     records are moved to it the first time their router is seen
//     (Tx.AdoptRouter): only then is its UDN known.
const SchemaVersion = 2

// DefaultOpenTimeout is how long Open waits for another process to release
// the file before it gives up.
const DefaultOpenTimeout = 2 * time.Second

// DefaultCheckBudget bounds the consistency check at Open. A doorman file
// of a few thousand shares is checked in milliseconds; the bound is for a
// file grown huge, which is checked in part rather than keeping doorman
// from starting.
const DefaultCheckBudget = 10 * time.Second

var (
	// ErrInUse means another process (usually a second doorman) holds the
	// database file.
	ErrInUse = errors.New("database is in use by another process")
	// ErrSchema means the file was written by a newer doorman.
	ErrSchema = errors.New("database was written by a newer doorman")
	// ErrDamaged means the file is not a doorman database or is damaged:
	// it fails the check at Open, bbolt panicked reading it, or a stored
	// value does not decode. Salvage is the way out.
	ErrDamaged = errors.New("database file is damaged or not a doorman database")
	// ErrUnwritable means a change could not be saved: the disk is full,
	// or the file system is read-only.
	ErrUnwritable = errors.New("database cannot be written")
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
	// CheckBudget bounds the consistency check at Open (default 10 s); a
	// file too big to check within it is checked in part.
	CheckBudget time.Duration
	// Logger gets one line when changes stop being saved (a full disk, a
	// read-only file system) and one when they are saved again; nil logs
	// nothing.
	Logger *slog.Logger
	// OpenFile opens the file instead of os.OpenFile, for tests that make
	// it read-only.
	OpenFile func(name string, flag int, perm os.FileMode) (*os.File, error)
}

// DB is an open doorman database.
type DB struct {
	bolt   *bolt.DB
	path   string
	logger *slog.Logger

	damage     chan struct{} // closed when damage is first seen
	damageOnce sync.Once
	damageErr  error // set before damage is closed

	// readOnly is why the file was opened read-only, nil if it was not.
	readOnly error

	mu    sync.Mutex
	fault *WriteFault // nil while changes are saved
}

// WriteFault is an episode of changes not being saved.
type WriteFault struct {
	Since time.Time
	Err   error // the first failure of the episode
	Count int   // failed transactions so far
}

// Open opens or creates the database at path and checks it. A second
// process opening the same file gets ErrInUse within the timeout instead of
// waiting forever; a damaged file gives ErrDamaged. A file doorman may read
// but not write (a read-only file system) is opened read-only, with a
// WriteFault from the start, so that doorman can still say what is wrong.
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
			if _, serr := os.Stat(path); serr != nil {
				return nil, fmt.Errorf("storage: unable to create the directory of %s: %w", path, err)
			}
		}
	}
	// bbolt panics (or faults on its memory map) on some damaged files
	// instead of returning an error; a damaged state file must give the
	// owner a message, not a stack trace. Such a panic inside bolt.Open
	// leaves its file open and locked: keep hold of the files to release
	// them then.
	openFile := opts.OpenFile
	if openFile == nil {
		openFile = os.OpenFile
	}
	var files []*os.File
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			for _, f := range files {
				// bbolt's memory map keeps the file open, and with it the
				// lock, after Close: unlock it first.
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}
			db, err = nil, fmt.Errorf("storage: unable to open %s: %w (%v)", path, ErrDamaged, r)
		}
	}()
	bopts := &bolt.Options{Timeout: timeout, OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := openFile(name, flag, perm)
		if err == nil {
			files = append(files, f)
		}
		return f, err
	}}
	b, err := bolt.Open(path, 0o600, bopts)
	var readOnly error
	if err != nil && cannotWrite(err) {
		if _, serr := os.Stat(path); serr == nil {
			readOnly = err
			ro := *bopts
			ro.ReadOnly = true
			b, err = bolt.Open(path, 0o600, &ro)
		}
	}
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("storage: unable to open %s: %w (waited %s; is another doorman running?)", path, ErrInUse, timeout)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, fmt.Errorf("storage: unable to open %s: %w: %w", path, ErrDamaged, err)
	case err != nil:
		return nil, fmt.Errorf("storage: unable to open %s: %w", path, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db = &DB{bolt: b, path: path, logger: logger, damage: make(chan struct{}), readOnly: readOnly}
	budget := opts.CheckBudget
	if budget <= 0 {
		budget = DefaultCheckBudget
	}
	if err := db.check(ctx, budget); err != nil {
		b.Close()
		return nil, err
	}
	if readOnly != nil {
		db.noteWrite(time.Now(), db.wrap(&storeError{"save changes", fmt.Errorf("%w: %w", ErrUnwritable, readOnly)}))
	}
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// cannotWrite reports whether err says the file may be read but not
// written.
func cannotWrite(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission)
}

// init makes the buckets and records the schema, writing only when
// something is missing: a healthy file opens without a write, read-only
// too.
func (db *DB) init() error {
	names := [][]byte{bucketMeta, bucketShares, bucketRules, bucketAlerts, bucketOutbox, bucketRouters, bucketDigests, bucketPending}
	var ready bool
	err := db.View(func(tx *Tx) error {
		ready = true
		for _, name := range names {
			if tx.tx.Bucket(name) == nil {
				ready = false
				return nil
			}
		}
		v := tx.tx.Bucket(bucketMeta).Get(keySchema)
		if v == nil {
			ready = false
			return nil
		}
		if err := checkSchema(v); err != nil {
			return err
		}
		// An older layout is marked as this one: its records move
		// as their routers are seen (see SchemaVersion).
		ready = binary.BigEndian.Uint64(v) == SchemaVersion
		return nil
	})
	if err == nil && !ready && db.readOnly != nil {
		// A read-only file of an older layout is read as it is.
		return nil
	}
	if err != nil || ready {
		if err != nil {
			return fmt.Errorf("storage: unable to prepare %s: %w", db.path, err)
		}
		return nil
	}
	err = db.Update(func(tx *Tx) error {
		// Before the buckets are made: it tells an older file by the
		// index missing.
		if err := indexPending(tx.tx); err != nil {
			return err
		}
		for _, name := range names {
			if _, err := tx.tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			if err := checkSchema(v); err != nil {
				return err
			}
		}
		return meta.Put(keySchema, u64(SchemaVersion))
	})
	if err != nil {
		return fmt.Errorf("storage: unable to prepare %s: %w", db.path, err)
	}
	return nil
}

func checkSchema(v []byte) error {
	if len(v) != 8 {
		return fmt.Errorf("%w: schema version has %d bytes", ErrDamaged, len(v))
	}
	if n := binary.BigEndian.Uint64(v); n > SchemaVersion {
		return fmt.Errorf("%w (schema %d, this build knows %d)", ErrSchema, n, SchemaVersion)
	}
	return nil
}

// Path returns the file the database lives in.
func (db *DB) Path() string { return db.path }

// Close closes the file and releases the lock.
func (db *DB) Close() error {
	return db.bolt.Close()
}

// View runs fn in a read-only transaction. A panic inside (bbolt panics on
// a damaged page) is returned as an error.
func (db *DB) View(fn func(tx *Tx) error) (err error) {
	defer db.recoverTx("read", &err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return db.wrap(db.bolt.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) }))
}

// Update runs fn in a read-write transaction; an error from fn rolls back
// everything it wrote. A failure to save (ErrUnwritable) starts a
// WriteFault, which lasts until a change is saved again.
func (db *DB) Update(fn func(tx *Tx) error) (err error) {
	if db.readOnly != nil {
		err := db.wrap(&storeError{"save changes", fmt.Errorf("%w: %w", ErrUnwritable, db.readOnly)})
		db.noteWrite(time.Now(), err)
		return err
	}
	defer db.recoverTx("write", &err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var fnErr error
	err = db.bolt.Update(func(btx *bolt.Tx) error {
		fnErr = fn(&Tx{tx: btx})
		return fnErr
	})
	switch {
	case err == nil:
		db.noteWrite(time.Now(), nil)
	case fnErr == nil && !errors.Is(err, bolterrors.ErrDatabaseNotOpen):
		// bbolt failed to begin or to commit: the disk, not the caller.
		err = db.wrap(&storeError{"save changes", fmt.Errorf("%w: %w", ErrUnwritable, err)})
		db.noteWrite(time.Now(), err)
		return err
	}
	return db.wrap(err)
}

// recoverTx turns a panic inside a transaction into an error. bbolt panics
// (or faults on its memory map, which SetPanicOnFault makes a panic) on
// damaged pages: that is ErrDamaged. Any other panic is a bug, and is
// returned as one rather than taking doorman down.
func (db *DB) recoverTx(op string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	where := panicSite()
	if strings.HasPrefix(where, "go.etcd.io/bbolt") {
		*err = fmt.Errorf("storage: %s: unable to %s: %w (%v in %s)", db.path, op, ErrDamaged, r, where)
		db.markDamaged(*err)
		return
	}
	*err = fmt.Errorf("storage: %s: a bug in doorman during a %s transaction: %v in %s", db.path, op, r, where)
}

// panicSite names the function that panicked, called from a deferred
// function while the panic unwinds.
func panicSite() string {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	panicking := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic" || f.Function == "runtime.sigpanic" || strings.HasPrefix(f.Function, "runtime.panic"):
			panicking = true
		case panicking && !strings.HasPrefix(f.Function, "runtime."):
			return f.Function
		}
		if !more {
			return "unknown"
		}
	}
}

// markDamaged records the first damage seen while doorman runs, for
// Damaged.
func (db *DB) markDamaged(err error) {
	db.damageOnce.Do(func() {
		db.damageErr = err
		close(db.damage)
	})
}

// Damaged is closed when a transaction found the file damaged; doorman
// stops then, since every later transaction may fail the same way.
func (db *DB) Damaged() <-chan struct{} { return db.damage }

// DamageErr is the damage Damaged announced, nil before.
func (db *DB) DamageErr() error {
	select {
	case <-db.damage:
		return db.damageErr
	default:
		return nil
	}
}

// noteWrite records the outcome of a write: err nil ends a WriteFault,
// anything else starts one or adds to it. The first failure and the end of
// an episode are logged, and nothing in between: a read-only SD card must
// not fill the log with one line per listing.
func (db *DB) noteWrite(now time.Time, err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	switch {
	case err == nil && db.fault != nil:
		db.logger.Info("database changes are saved again", "db", db.path, "failed", db.fault.Count, "for", now.Sub(db.fault.Since).Round(time.Second).String())
		db.fault = nil
	case err != nil && db.fault == nil:
		db.fault = &WriteFault{Since: now, Err: err, Count: 1}
		msg := "unable to save changes to the database; doorman keeps running and retries, but remembers nothing new until this is fixed (a full disk or a read-only file system?)"
		if db.readOnly != nil {
			msg = "unable to save changes to the database: it could be opened for reading only; doorman keeps running, but remembers nothing new until it is restarted with a file it may write"
		}
		db.logger.Error(msg, "db", db.path, "err", err)
	case err != nil:
		db.fault.Count++
	}
}

// WriteFault returns the current episode of changes not being saved, nil
// while they are.
func (db *DB) WriteFault() *WriteFault {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.fault == nil {
		return nil
	}
	f := *db.fault
	return &f
}

func (db *DB) wrap(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrDamaged) {
		db.markDamaged(err)
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
		return false, &storeError{"decode " + string(bucket) + " entry " + fmt.Sprintf("%q", key), fmt.Errorf("%w: %w", ErrDamaged, err)}
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
			return &storeError{"decode " + string(bucket) + " entry", fmt.Errorf("%w: %w", ErrDamaged, err)}
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
