package watcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/huin/goupnp/httpu"
	"github.com/huin/goupnp/ssdp"
)

// The device types a home router announces. IGD:2 routers also answer an
// IGD:1 search, but not every IGD:1 router answers an IGD:2 one.
const (
	searchIGDv1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
	searchIGDv2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
)

// Discover searches the LAN for Internet Gateway Devices by SSDP and returns
// those at the machine's default IPv4 gateway.
//
// Any device on the LAN can answer an SSDP search and claim to be the router,
// so an answer is believed only when its description URL is on the default
// gateway's address; nothing is fetched from any other host.
func (c *Client) Discover(ctx context.Context) ([]*Gateway, error) {
	gateways, err := c.defaultGateways()
	if err != nil {
		return nil, &DiscoveryError{Hint: HintNoDefaultGateway, Err: fmt.Errorf("%w: %w", ErrNoGateway, err)}
	}
	if len(gateways) == 0 {
		return nil, &DiscoveryError{Hint: HintNoDefaultGateway, Err: fmt.Errorf("%w: this machine has no IPv4 default gateway", ErrNoGateway)}
	}
	gwList := joinAddrs(gateways)

	searchCtx, cancel := context.WithTimeout(ctx, c.discoveryTimeout+100*time.Millisecond)
	defer cancel()
	var (
		mu        sync.Mutex
		responses []*http.Response
		searchErr []error
		wg        sync.WaitGroup
	)
	for _, st := range []string{searchIGDv1, searchIGDv2} {
		wg.Go(func() {
			rs, err := c.search(searchCtx, st)
			mu.Lock()
			defer mu.Unlock()
			responses = append(responses, rs...)
			if err != nil {
				searchErr = append(searchErr, err)
			}
		})
	}
	wg.Wait()
	if len(responses) == 0 && len(searchErr) > 0 {
		return nil, fmt.Errorf("%w: SSDP search failed: %w", ErrNoGateway, errors.Join(searchErr...))
	}

	var believed, ignored []string
	for _, resp := range responses {
		loc, err := resp.Location()
		if err != nil {
			continue
		}
		addr, err := netip.ParseAddr(loc.Hostname())
		if err != nil || !slices.Contains(gateways, addr.Unmap()) {
			if !slices.Contains(ignored, loc.String()) {
				ignored = append(ignored, loc.String())
				c.logger.Warn("ignoring an SSDP answer that is not from the default gateway", "location", loc.String(), "gateway", gwList)
			}
			continue
		}
		if !slices.Contains(believed, loc.String()) {
			believed = append(believed, loc.String())
		}
	}
	if len(believed) == 0 {
		if len(ignored) > 0 {
			return nil, &DiscoveryError{Hint: HintNotTheGateway, Err: fmt.Errorf("%w: no answer to an SSDP search from the default gateway %s in %s (ignored %s, which is not the gateway)",
				ErrNoGateway, gwList, c.discoveryTimeout, strings.Join(ignored, ", "))}
		}
		return nil, &DiscoveryError{Hint: HintNoAnswer, Err: fmt.Errorf("%w: no answer to an SSDP search for an InternetGatewayDevice from the default gateway %s in %s; is UPnP enabled on the router?",
			ErrNoGateway, gwList, c.discoveryTimeout)}
	}

	var found []*Gateway
	var errs []error
	for _, loc := range believed {
		gw, err := c.fetchGateway(ctx, loc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.logSkipped(gw)
		found = append(found, gw)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrNoGateway, errors.Join(errs...))
	}
	return found, errors.Join(errs...)
}

// ssdpSearch sends an M-SEARCH on the interface of the default route and
// collects the answers until ctx ends.
func ssdpSearch(ctx context.Context, searchTarget string) ([]*http.Response, error) {
	client, err := httpu.NewHTTPUClient()
	if err != nil {
		return nil, fmt.Errorf("watcher: unable to open an SSDP socket: %w", err)
	}
	defer client.Close()
	rs, err := ssdp.RawSearch(ctx, client, searchTarget, 3)
	if err != nil {
		return nil, fmt.Errorf("watcher: unable to search for %s: %w", searchTarget, err)
	}
	return rs, nil
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
