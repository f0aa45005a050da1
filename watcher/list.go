package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// How a listing ends. Every router answers GetGenericPortMappingEntry, so it
// is the baseline; routers disagree on how they say "no entry at this index":
//   - 713 SpecifiedArrayIndexInvalid, as the spec says (miniupnpd, Cisco,
//     D-Link, FRITZ!Box);
//   - 714 NoSuchEntryInArray (several Broadcom and libupnp stacks);
//   - 402 Invalid Args (DD-WRT's own daemon on an empty table; Cisco for
//     bad indexes);
//   - 501 Action Failed (older miniupnpd builds and some ISP gateways).
//
// GetListOfPortMappings (IGDv2) would fetch the table in one request, but it
// is not safe: miniupnpd 2.3.1 crashes on it once one protocol holds more than
// about 130 mappings, and 2.3.6 and later report internal port 0 in it
// (miniupnp issue 768). A listing must never take the router's UPnP service
// down, so doorman does not send it.
func isEndOfList(code int) bool {
	switch code {
	case CodeArrayIndexInvalid, CodeNoSuchEntryInArray, CodeInvalidArgs, CodeActionFailed:
		return true
	}
	return false
}

const (
	// Some routers ignore the index and answer every request with the same
	// entry; others cycle. A mapping added while the list is read also
	// shifts the indexes and shows one entry twice. A few repeats in a row
	// end the list; a single one is skipped.
	maxRepeatsInARow = 3
	// Malformed rows are skipped, but a router that sends nothing else is
	// not read to the index cap.
	maxMalformedInARow = 3
	// listWindow is how many GetGenericPortMappingEntry requests are in
	// flight at once. Routers close the connection after every answer, so
	// one at a time spends most of the listing on connection setup. Four
	// in flight list 320 entries from the lab's miniupnpd in 54-59 ms
	// instead of 77-83 ms (upnpc -l: 42-45 ms), which keeps doorman list
	// within 1.5x of upnpc -l (deploy/lab/bench-list.sh); one at a time
	// is 1.8x. Eight overflowed its listen backlog in the lab and stalled
	// a second on a SYN retransmit; a router that fails a request while
	// several are in flight is read one at a time.
	listWindow = 4
	retryPause = 200 * time.Millisecond
)

// ListMappings reads every port mapping of every connection service of gw.
// On error it returns the mappings it did read with it: the caller must not
// take the list for complete then.
func (c *Client) ListMappings(ctx context.Context, gw *Gateway) ([]Mapping, error) {
	var all []Mapping
	var errs []error
	for _, svc := range gw.Services {
		ms, err := c.listService(ctx, gw, svc)
		all = append(all, ms...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return all, errors.Join(errs...)
}

// listService reads the port mappings of one connection service of gw. On
// error it returns what it did read with it.
func (c *Client) listService(ctx context.Context, gw *Gateway, svc *Service) ([]Mapping, error) {
	l := &listing{c: c, gw: gw, svc: svc, seen: map[Key]bool{},
		log: c.logger.With("router", gw.URL, "service", svc.ShortType())}
	err := l.run(ctx, 0, listWindow)
	var retry *retrySequential
	if errors.As(err, &retry) {
		l.log.Warn("router failed a request while several were in flight; reading one at a time", "index", retry.index, "err", retry.err)
		// Let a struggling router finish what it was still serving.
		t := time.NewTimer(retryPause)
		defer t.Stop()
		select {
		case <-t.C:
			err = l.run(ctx, retry.index, 1)
		case <-ctx.Done():
			err = fmt.Errorf("watcher: listing %s of %s: %w", svc.ShortType(), gw.URL, ctx.Err())
		}
	}
	return l.out, err
}

// listing is the state of reading one connection service's table.
type listing struct {
	c         *Client
	gw        *Gateway
	svc       *Service
	log       *slog.Logger
	out       []Mapping
	seen      map[Key]bool
	repeats   int
	malformed int
}

// mayBeOverload tells failures that more requests at once could have caused
// (refused or reset connections, timeouts, cut-off answers) from the router's
// own answers, which one request at a time would not change.
func mayBeOverload(err error) bool {
	return UPnPErrorCode(err) == 0 && !errors.Is(err, ErrMalformedEntry) && !errors.Is(err, ErrResponseTooLarge)
}

type retrySequential struct {
	index int
	err   error
}

func (r *retrySequential) Error() string { return r.err.Error() }

type entryResult struct {
	entry PortMappingEntry
	err   error
}

// run reads entries from index start on, with up to window requests in
// flight, and judges them strictly in index order.
func (l *listing) run(ctx context.Context, start, window int) error {
	ctx, cancel := context.WithCancel(ctx)
	// Requests past the end of the list are abandoned when run returns, and
	// waited for, so that no request is left running behind the caller.
	// window workers send the requests: one goroutine per request grew a
	// fresh stack every time.
	type job struct {
		index uint16
		out   chan<- entryResult
	}
	jobs := make(chan job, window)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(jobs)
	defer cancel()
	for range window {
		wg.Go(func() {
			for j := range jobs {
				e, err := l.svc.client.GetGenericPortMappingEntryCtx(ctx, j.index)
				j.out <- entryResult{e, err}
			}
		})
	}
	var pending []chan entryResult
	next := start
	issue := func() {
		ch := make(chan entryResult, 1)
		jobs <- job{uint16(next), ch}
		next++
		pending = append(pending, ch)
	}
	for i := start; ; i++ {
		if i >= l.c.maxMappings {
			return fmt.Errorf("watcher: listing %s of %s: %w: stopped at %d entries", l.svc.ShortType(), l.gw.URL, ErrTooManyMappings, i)
		}
		for len(pending) < window && next < l.c.maxMappings {
			issue()
		}
		var r entryResult
		select {
		case r = <-pending[0]:
			pending = pending[1:]
		case <-ctx.Done():
			return fmt.Errorf("watcher: listing %s of %s: %w", l.svc.ShortType(), l.gw.URL, ctx.Err())
		}
		done, err := l.judge(i, r)
		if err != nil && window > 1 && ctx.Err() == nil && mayBeOverload(err) {
			return &retrySequential{index: i, err: err}
		}
		if done || err != nil {
			return err
		}
	}
}

// judge takes the answer for one index; done means the list has ended.
func (l *listing) judge(i int, r entryResult) (done bool, err error) {
	if r.err != nil {
		if code := UPnPErrorCode(r.err); isEndOfList(code) {
			l.log.Debug("end of port mapping list", "entries", len(l.out), "index", i, "code", code)
			return true, nil
		}
		return true, fmt.Errorf("watcher: unable to list port mappings of %s (%s, entry %d): %w", l.gw.URL, l.svc.ShortType(), i, r.err)
	}
	m, ok, err := parseEntry(r.entry)
	if err != nil {
		l.malformed++
		l.log.Warn("router sent a malformed port mapping entry; skipped", "index", i, "err", err)
		if l.malformed >= maxMalformedInARow {
			return true, fmt.Errorf("watcher: unable to list port mappings of %s (%s): %d entries in a row, last at %d: %w: %v",
				l.gw.URL, l.svc.ShortType(), l.malformed, i, ErrMalformedEntry, err)
		}
		return false, nil
	}
	l.malformed = 0
	if !ok {
		l.log.Debug("placeholder entry skipped", "index", i)
		return false, nil
	}
	m.Router = l.gw.ID
	m.Service = l.svc.Type
	if l.seen[m.Key()] {
		l.repeats++
		if l.repeats >= maxRepeatsInARow {
			l.log.Warn("router repeats port mapping entries; taking the list as ended", "index", i, "entries", len(l.out))
			return true, nil
		}
		return false, nil
	}
	l.repeats = 0
	l.seen[m.Key()] = true
	l.out = append(l.out, m)
	return false, nil
}
