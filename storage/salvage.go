package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrNotDamaged is Salvage's answer for a file that passes the check.
var ErrNotDamaged = errors.New("database is not damaged")

// SalvageReport says what Salvage did.
type SalvageReport struct {
	// Damage is what the check at Open found.
	Damage error
	// Copy is where the damaged file is kept.
	Copy string
	// Buckets lists what was saved of each kind of entry, in file order.
	Buckets []BucketSalvage
	// Unreadable is set when nothing could be read: the new file is empty.
	Unreadable error
}

// BucketSalvage is what was saved of one bucket.
type BucketSalvage struct {
	Name string
	Kept int
	// Lost counts entries skipped as damaged; Cut is set when reading the
	// bucket broke off, so that an unknown number after it is lost.
	Lost int
	Cut  bool
}

// Salvage replaces a damaged database with a fresh one holding everything
// that can still be read from it, and keeps the damaged file beside it as
// path.damaged-TIME. The file must not be in use: a running doorman makes
// it fail with ErrInUse. A file that passes the check is left alone
// (ErrNotDamaged).
func Salvage(ctx context.Context, path string, now time.Time) (SalvageReport, error) {
	var rep SalvageReport
	if _, err := os.Stat(path); err != nil {
		return rep, fmt.Errorf("storage: unable to repair %s: %w", path, err)
	}
	db, err := Open(ctx, path, Options{})
	switch {
	case err == nil:
		db.Close()
		return rep, fmt.Errorf("storage: %s: %w", path, ErrNotDamaged)
	case errors.Is(err, ErrInUse):
		return rep, err
	case !errors.Is(err, ErrDamaged):
		return rep, fmt.Errorf("storage: unable to repair %s: %w", path, err)
	}
	rep.Damage = err

	tmp := path + ".repair"
	os.Remove(tmp)
	fresh, err := Open(ctx, tmp, Options{})
	if err != nil {
		return rep, err
	}
	defer os.Remove(tmp)
	// Read-only, the damaged file is shared-locked, which keeps a doorman
	// from opening it for writing meanwhile; its free list, often what is
	// damaged, is not read at all.
	old, err := openDamaged(path)
	if errors.Is(err, ErrInUse) {
		fresh.Close()
		return rep, err
	}
	if err != nil {
		rep.Unreadable = err
	} else {
		rep.Buckets, err = copyReadable(old, fresh.bolt)
		old.Close()
		if err != nil {
			fresh.Close()
			return rep, fmt.Errorf("storage: unable to write %s: %w", tmp, err)
		}
	}
	if err := fresh.Close(); err != nil {
		return rep, fmt.Errorf("storage: unable to write %s: %w", tmp, err)
	}
	check, err := Open(ctx, tmp, Options{})
	if err != nil {
		return rep, fmt.Errorf("storage: the repaired file fails its check: %w", err)
	}
	check.Close()

	rep.Copy = fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405Z"))
	if err := keepCopy(path, rep.Copy); err != nil {
		return rep, fmt.Errorf("storage: unable to keep a copy of %s as %s: %w", path, rep.Copy, err)
	}
	matchOwner(path, tmp)
	// The rename puts the new file in place in one step: a doorman
	// starting meanwhile opens the old file or the new one, never none.
	if err := os.Rename(tmp, path); err != nil {
		return rep, fmt.Errorf("storage: unable to put the repaired file in place of %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return rep, nil
}

// openDamaged opens path read-only, a panic in bbolt being damage.
func openDamaged(path string) (b *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%w (%v)", ErrDamaged, r)
		}
	}()
	b, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: DefaultOpenTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("storage: %s: %w", path, ErrInUse)
	}
	return b, err
}

// copyReadable copies every entry of old that reads back as doorman wrote
// it into fresh, bucket by bucket, so that damage in one bucket costs only
// what lies behind it.
func copyReadable(old, fresh *bolt.DB) ([]BucketSalvage, error) {
	var names [][]byte
	oldTx, err := old.Begin(false)
	if err != nil {
		return nil, err
	}
	defer oldTx.Rollback()
	readSafely(func() {
		oldTx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, bytes.Clone(name))
			return nil
		})
	})
	var out []BucketSalvage
	err = fresh.Update(func(tx *bolt.Tx) error {
		for _, name := range names {
			if bytes.Equal(name, bucketPending) {
				// Made anew from the alerts kept, below.
				continue
			}
			dst, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			rep := BucketSalvage{Name: string(name)}
			var seq, maxID uint64
			rep.Cut = !readSafely(func() {
				src := oldTx.Bucket(name)
				if src == nil {
					return
				}
				seq = src.Sequence()
				c := src.Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					if v == nil || checkValue(name, nil, k, v) != nil || (bytes.Equal(name, bucketMeta) && bytes.Equal(k, keySchema) && checkSchema(v) != nil) {
						rep.Lost++
						continue
					}
					if err := dst.Put(bytes.Clone(k), bytes.Clone(v)); err != nil {
						rep.Lost++
						continue
					}
					rep.Kept++
					if len(k) == 8 {
						maxID = max(maxID, binary.BigEndian.Uint64(k))
					}
				}
			})
			// IDs go on from the highest kept, so that no new alert or
			// rule takes the ID of one a chat message still names.
			if err := dst.SetSequence(max(seq, maxID)); err != nil {
				return err
			}
			out = append(out, rep)
		}
		// The index of open questions must name exactly the pending
		// alerts kept: one naming a lost alert fails every listing
		// (Tx.PendingAlerts), and a pending alert it lost would never
		// be joined or answered with its siblings.
		if tx.Bucket(bucketPending) != nil {
			if err := tx.DeleteBucket(bucketPending); err != nil {
				return err
			}
		}
		return indexPending(tx)
	})
	return out, err
}

// readSafely runs fn, which reads the damaged file, and reports whether it
// finished: a panic or memory fault stops it where the damage is.
func readSafely(fn func()) (finished bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			finished = false
		}
	}()
	fn()
	return true
}

// keepCopy keeps the damaged file under another name: a hard link, or a
// copy where the file system has none.
func keepCopy(path, copyPath string) error {
	if err := os.Link(path, copyPath); err == nil {
		return nil
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(copyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		os.Remove(copyPath)
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// matchOwner gives the new file the owner of the old one, for a repair run
// as root for a service with a user of its own.
func matchOwner(old, fresh string) {
	fi, err := os.Stat(old)
	if err != nil {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		os.Chown(fresh, int(st.Uid), int(st.Gid))
	}
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
