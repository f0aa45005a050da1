package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/doorman-upnp/doorman/storage"
)

// runRepair is the way out of a damaged database: it keeps the damaged
// file beside the new one and saves what can still be read.
func runRepair(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("repair", "repair [flags]", e)
	cfg, code, ok := loadCommandConfig(fs, args, e)
	if !ok {
		return code
	}
	rep, err := storage.Salvage(ctx, cfg.DBPath, time.Now())
	switch {
	case errors.Is(err, storage.ErrNotDamaged):
		fmt.Fprintf(e.stdout, "doorman: %s is not damaged; nothing to repair.\n", cfg.DBPath)
		return 0
	case errors.Is(err, storage.ErrInUse):
		printError(e.stderr, fmt.Errorf("%s is in use by a running doorman; stop it first (systemctl stop doorman, or docker compose stop), then run doorman repair again", cfg.DBPath))
		return 1
	case err != nil:
		printError(e.stderr, err)
		return 1
	}
	w := e.stdout
	fmt.Fprintf(w, "doorman: %s was damaged (%s).\n", cfg.DBPath, damageDetail(cfg.DBPath, rep.Damage))
	if rep.Unreadable != nil {
		fmt.Fprintf(w, "doorman: nothing in it could be read (%s); the new file is empty.\n", oneLine(rep.Unreadable.Error()))
		fmt.Fprintln(w, "doorman: doorman starts as the first time: it reports the shares that are open, and a chat paired with a code must pair again.")
	} else {
		fmt.Fprintf(w, "doorman: saved into a new file: %s.\n", describeSalvage(rep.Buckets))
		fmt.Fprintln(w, "doorman: shares it lost are asked about again as new; lost rules must be made again.")
	}
	fmt.Fprintf(w, "doorman: the damaged file is kept as %s; delete it once doorman works again.\n", rep.Copy)
	fmt.Fprintln(w, "doorman: start doorman again (systemctl start doorman, or docker compose start).")
	return 0
}

// salvageOrder names the buckets as people know them, most important
// first.
var salvageOrder = []struct{ bucket, name string }{
	{"shares", "shares"},
	{"rules", "rules"},
	{"alerts", "alerts"},
	{"outbox", "unsent messages"},
	{"digests", "digests"},
	{"routers", "routers"},
	{"meta", "other entries (the paired chat, Telegram's position)"},
}

func describeSalvage(buckets []storage.BucketSalvage) string {
	byName := map[string]storage.BucketSalvage{}
	for _, b := range buckets {
		byName[b.Name] = b
	}
	var parts []string
	add := func(b storage.BucketSalvage, name string) {
		p := fmt.Sprintf("%d %s", b.Kept, name)
		switch {
		case b.Cut:
			p += " (the rest was unreadable)"
		case b.Lost > 0:
			p += fmt.Sprintf(" (%d unreadable)", b.Lost)
		}
		parts = append(parts, p)
	}
	for _, o := range salvageOrder {
		if b, ok := byName[o.bucket]; ok {
			add(b, o.name)
			delete(byName, o.bucket)
		}
	}
	for _, b := range buckets {
		if _, ok := byName[b.Name]; ok {
			add(b, "entries of "+b.Name)
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// damagedError is what doorman run says about a damaged database: one plain
// message with the way out.
type damagedError struct {
	path string
	err  error
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("the database %s is damaged, so doorman cannot run on it (%s). %s",
		e.path, damageDetail(e.path, e.err), repairAdvice(e.path))
}

// damageDetail is what is damaged, without the file name said already.
func damageDetail(path string, err error) string {
	s := strings.TrimPrefix(err.Error(), "storage: ")
	s = strings.ReplaceAll(s, "unable to open "+path+": ", "")
	s = strings.ReplaceAll(s, path+": ", "")
	s = strings.ReplaceAll(s, storage.ErrDamaged.Error()+": ", "")
	return oneLine(s)
}

func (e *damagedError) Unwrap() error { return e.err }

// repairAdvice is the way out of a damaged database, as a sentence.
func repairAdvice(path string) string {
	return fmt.Sprintf("Stop doorman and run \"doorman repair --db %s\": it keeps the damaged file as a copy and starts a new one with everything that can still be read (see Troubleshooting in the README).", path)
}

// asDamaged gives a damaged-database error its message.
func asDamaged(path string, err error) error {
	var d *damagedError
	if !errors.As(err, &d) && errors.Is(err, storage.ErrDamaged) {
		return &damagedError{path: path, err: err}
	}
	return err
}
