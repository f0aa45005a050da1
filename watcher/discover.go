package watcher

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The device types a home router announces. IGD:2 routers also answer an
// IGD:1 search, but not every IGD:1 router answers an IGD:2 one.
const (
	searchIGDv1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
	searchIGDv2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
)

const (
	// descriptionGrace is how long discovery waits, once the gateway's
	// first description has loaded, for another answer from the gateway:
	// a FRITZ!Box answers the IGD:1 search with igddesc.xml and the IGD:2
	// search with igd2desc.xml, a few milliseconds apart. 150 ms also
	// covers a busy router's second answer and is short next to a listing.
	descriptionGrace = 150 * time.Millisecond
	// maxGatewayDescriptions bounds the description URLs on the gateway
	// fetched in one discovery (a router has one, a FRITZ!Box two), so that
	// answers forged with the gateway's address cannot make doorman fetch
	// without end.
	maxGatewayDescriptions = 8
	// maxSearchAnswers bounds the answers read in one discovery: the router
	// answers within milliseconds, so a LAN that sends this many is
	// flooding, and the search stops.
	maxSearchAnswers = 1024
	// maxIgnoredNamed bounds the other hosts' answers logged and named in
	// the error.
	maxIgnoredNamed = 8
)

// discoveryState decides when a discovery has what it will get. Discovery
// fetches each new description URL the gateway announces while it may, and
// ends when
//   - a description has loaded, descriptionGrace has passed since the first
//     did, and no fetch is in flight; or
//   - the deadline (the discovery timeout after the start) has passed and a
//     description has loaded: slower fetches are abandoned; or
//   - no fetch is in flight and either the deadline has passed or the
//     search has ended.
//
// A fetch in flight when the deadline passes with nothing loaded is waited
// for: it ends within the request timeout, as a description fetched after a
// search always did.
type discoveryState struct {
	deadline  time.Time
	graceEnd  time.Time // zero until the first description has loaded
	searching bool      // the search is still reading answers
	answers   int       // answers read
	started   int       // fetches started
	inFlight  int
	loaded    int
}

// mayFetch tells whether a description URL the gateway announces now is
// fetched.
func (s *discoveryState) mayFetch(now time.Time) bool {
	return s.started < maxGatewayDescriptions && now.Before(s.deadline) &&
		(s.graceEnd.IsZero() || now.Before(s.graceEnd))
}

func (s *discoveryState) fetchStarted() {
	s.started++
	s.inFlight++
}

func (s *discoveryState) fetchDone(now time.Time, loaded bool) {
	s.inFlight--
	if !loaded {
		return
	}
	s.loaded++
	if s.graceEnd.IsZero() {
		s.graceEnd = now.Add(descriptionGrace)
	}
}

func (s *discoveryState) done(now time.Time) bool {
	pastDeadline := !now.Before(s.deadline)
	switch {
	case s.loaded > 0 && !now.Before(s.graceEnd) && s.inFlight == 0:
		return true
	case s.loaded > 0 && pastDeadline:
		return true
	case s.inFlight == 0 && (pastDeadline || !s.searching):
		return true
	}
	return false
}

// wait is how long from now done may turn true without anything arriving;
// past the deadline only a fetch result can change it, which wakes the
// caller anyway.
func (s *discoveryState) wait(now time.Time) time.Duration {
	switch {
	case !s.graceEnd.IsZero() && now.Before(s.graceEnd) && s.graceEnd.Before(s.deadline):
		return s.graceEnd.Sub(now)
	case now.Before(s.deadline):
		return s.deadline.Sub(now)
	}
	return time.Hour
}

// Discover searches the LAN for Internet Gateway Devices by SSDP and returns
// those at the machine's default IPv4 gateway.
//
// Any device on the LAN can answer an SSDP search and claim to be the router,
// so an answer is believed only when it comes from the default gateway's
// address and its description URL is on that address too; nothing is
// fetched from any other host.
//
// Discovery returns as soon as the gateway has answered and its descriptions
// are read, plus descriptionGrace for a second description; the discovery
// timeout only bounds the wait for a gateway that does not answer (see
// discoveryState).
func (c *Client) Discover(ctx context.Context) ([]*Gateway, error) {
	gateways, err := c.defaultGateways()
	if err != nil {
		return nil, &DiscoveryError{Hint: HintNoDefaultGateway, Err: fmt.Errorf("%w: %w", ErrNoGateway, err)}
	}
	if len(gateways) == 0 {
		return nil, &DiscoveryError{Hint: HintNoDefaultGateway, Err: fmt.Errorf("%w: this machine has no IPv4 default gateway", ErrNoGateway)}
	}
	d := &discovery{c: c, gateways: gateways, state: discoveryState{
		deadline:  time.Now().Add(c.discoveryTimeout),
		searching: true,
	}}
	return d.run(ctx)
}

// discovery is one run of Discover.
type discovery struct {
	c        *Client
	gateways []netip.Addr
	state    discoveryState

	seen    []string // description URLs on the gateway, normalised, in order of answer
	fetched []string // those fetched
	ignored []string // other hosts' URLs, the first maxIgnoredNamed
	dropped int      // gateway URLs not fetched: too late or too many
	found   map[string]*Gateway
	errs    map[string]error
}

type fetchResult struct {
	loc string
	gw  *Gateway
	err error
}

func (d *discovery) run(ctx context.Context) ([]*Gateway, error) {
	searchCtx, stopSearch := context.WithDeadline(ctx, d.state.deadline)
	answers := make(chan searchAnswer)
	searchDone := make(chan error, 1)
	go func() {
		searchDone <- d.c.search(searchCtx, []string{searchIGDv1, searchIGDv2}, func(a searchAnswer) {
			select {
			case answers <- a:
			case <-searchCtx.Done():
			}
		})
	}()
	fetchCtx, cancelFetches := context.WithCancel(ctx)
	results := make(chan fetchResult, maxGatewayDescriptions)
	var fetches sync.WaitGroup
	defer func() {
		stopSearch()
		cancelFetches()
		if d.state.searching {
			<-searchDone
		}
		fetches.Wait()
	}()

	d.found, d.errs = map[string]*Gateway{}, map[string]error{}
	var searchErr error
	timer := time.NewTimer(d.state.wait(time.Now()))
	defer timer.Stop()
	for !d.state.done(time.Now()) {
		select {
		case a := <-answers:
			now := time.Now()
			d.state.answers++
			if d.state.answers >= maxSearchAnswers {
				// A flood: the router's answer, if any, came long
				// before this many.
				stopSearch()
			}
			loc, ok := d.believe(a)
			if !ok {
				continue
			}
			if !d.state.mayFetch(now) {
				d.dropped++
				continue
			}
			d.state.fetchStarted()
			d.fetched = append(d.fetched, loc)
			fetches.Go(func() {
				gw, err := d.c.fetchGateway(fetchCtx, loc)
				results <- fetchResult{loc, gw, err}
			})
		case r := <-results:
			d.state.fetchDone(time.Now(), r.err == nil)
			if r.err != nil {
				d.errs[r.loc] = r.err
			} else {
				d.found[r.loc] = r.gw
			}
		case err := <-searchDone:
			d.state.searching = false
			searchErr = err
		case <-timer.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: discovery stopped: %w", ErrNoGateway, ctx.Err())
		}
		timer.Reset(d.state.wait(time.Now()))
	}
	return d.result(searchErr)
}

// believe returns the description URL of an answer from the default
// gateway, once per URL; other answers are logged and ignored.
func (d *discovery) believe(a searchAnswer) (string, bool) {
	if a.ST != searchIGDv1 && a.ST != searchIGDv2 {
		return "", false
	}
	loc, err := url.Parse(a.Location)
	if err != nil || (loc.Scheme != "http" && loc.Scheme != "https") {
		return "", false
	}
	host, err := netip.ParseAddr(loc.Hostname())
	if err != nil || !slices.Contains(d.gateways, host.Unmap()) || !slices.Contains(d.gateways, a.From) {
		if !slices.Contains(d.ignored, loc.String()) && len(d.ignored) < maxIgnoredNamed {
			d.ignored = append(d.ignored, loc.String())
			d.c.logger.Warn("ignoring an SSDP answer that is not from the default gateway",
				"location", loc.String(), "from", a.From.String(), "gateway", joinAddrs(d.gateways))
		}
		return "", false
	}
	// One URL spelled two ways (":05000", "//", "?x") is fetched once.
	seen, err := normalizeURL(loc.String())
	if err != nil || slices.Contains(d.seen, seen) {
		return "", false
	}
	d.seen = append(d.seen, seen)
	return loc.String(), true
}

func (d *discovery) result(searchErr error) ([]*Gateway, error) {
	var found []*Gateway
	var errs []error
	for _, loc := range d.fetched {
		switch {
		case d.found[loc] != nil:
			d.c.logSkipped(d.found[loc])
			found = append(found, d.found[loc])
		case d.errs[loc] != nil:
			errs = append(errs, d.errs[loc])
		default:
			// Abandoned at the deadline: another description loaded.
			errs = append(errs, fmt.Errorf("watcher: root description %s did not load within the discovery timeout (%s)", loc, d.c.discoveryTimeout))
		}
	}
	if d.dropped > 0 {
		d.c.logger.Debug("discovery did not fetch descriptions announced after the gateway had answered", "count", d.dropped)
	}
	if len(found) > 0 {
		return found, errors.Join(errs...)
	}
	gwList := joinAddrs(d.gateways)
	switch {
	case len(errs) > 0:
		return nil, fmt.Errorf("%w: %w", ErrNoGateway, errors.Join(errs...))
	case searchErr != nil:
		return nil, fmt.Errorf("%w: SSDP search failed: %w", ErrNoGateway, searchErr)
	case len(d.ignored) > 0:
		return nil, &DiscoveryError{Hint: HintNotTheGateway, Err: fmt.Errorf("%w: no answer to an SSDP search from the default gateway %s in %s (ignored %s, which is not the gateway)",
			ErrNoGateway, gwList, d.c.discoveryTimeout, strings.Join(d.ignored, ", "))}
	}
	return nil, &DiscoveryError{Hint: HintNoAnswer, Err: fmt.Errorf("%w: no answer to an SSDP search for an InternetGatewayDevice from the default gateway %s in %s; is UPnP enabled on the router?",
		ErrNoGateway, gwList, d.c.discoveryTimeout)}
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
