package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

func (c *Client) listService(ctx context.Context, gw *Gateway, svc *Service) ([]Mapping, error) {
	log := c.logger.With("router", gw.URL, "service", svc.ShortType())
	var out []Mapping
	seen := map[Key]bool{}
	repeats, malformed := 0, 0
	for i := 0; ; i++ {
		if i >= c.maxMappings {
			return out, fmt.Errorf("watcher: listing %s of %s: %w: stopped at %d entries", svc.ShortType(), gw.URL, ErrTooManyMappings, i)
		}
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("watcher: listing %s of %s: %w", svc.ShortType(), gw.URL, err)
		}
		entry, err := svc.client.GetGenericPortMappingEntryCtx(ctx, uint16(i))
		if err != nil {
			if code := UPnPErrorCode(err); isEndOfList(code) {
				log.Debug("end of port mapping list", "entries", len(out), "index", i, "code", code)
				return out, nil
			}
			return out, fmt.Errorf("watcher: unable to list port mappings of %s (%s, entry %d): %w", gw.URL, svc.ShortType(), i, err)
		}
		m, ok, err := parseEntry(entry)
		if err != nil {
			malformed++
			log.Warn("router sent a malformed port mapping entry; skipped", "index", i, "err", err)
			if malformed >= maxMalformedInARow {
				return out, fmt.Errorf("watcher: unable to list port mappings of %s (%s): %d malformed entries in a row, last at %d: %w", gw.URL, svc.ShortType(), malformed, i, err)
			}
			continue
		}
		malformed = 0
		if !ok {
			log.Debug("placeholder entry skipped", "index", i)
			continue
		}
		m.Router = gw.URL
		m.Service = svc.Type
		if seen[m.Key()] {
			repeats++
			if repeats >= maxRepeatsInARow {
				log.Warn("router repeats port mapping entries; taking the list as ended", "index", i, "entries", len(out))
				return out, nil
			}
			continue
		}
		repeats = 0
		seen[m.Key()] = true
		out = append(out, m)
	}
}

// logAttrs is how a mapping appears in log lines.
func (m Mapping) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("protocol", m.Protocol),
		slog.Int("external_port", int(m.ExternalPort)),
		slog.String("internal_client", m.InternalClient),
		slog.Int("internal_port", int(m.InternalPort)),
		slog.String("description", m.Description),
	)
}
