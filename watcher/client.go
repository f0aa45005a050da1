package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Config configures a Client. Zero values mean the defaults.
type Config struct {
	// IGDURLs are root description URLs to use instead of discovery.
	IGDURLs []string
	// RequestTimeout bounds each request to a router (default 5 s).
	RequestTimeout time.Duration
	// DiscoveryTimeout is how long SSDP discovery waits at most for the
	// default gateway to answer (default 2 s, at least 1 s); discovery
	// returns as soon as the gateway's descriptions are read.
	DiscoveryTimeout time.Duration
	// MaxMappings caps the entries read from one connection service
	// (default 4096); a router that lists more is cut off with
	// ErrTooManyMappings.
	MaxMappings int
	Logger      *slog.Logger
}

// Defaults for Config.
const (
	DefaultRequestTimeout   = 5 * time.Second
	DefaultDiscoveryTimeout = 2 * time.Second
	DefaultMaxMappings      = 4096
)

// Client finds gateways and reads their port mappings.
type Client struct {
	igdURLs          []string
	requestTimeout   time.Duration
	discoveryTimeout time.Duration
	maxMappings      int
	logger           *slog.Logger
	dialer           *net.Dialer
	httpClient       *http.Client
	// reqErrs counts failed SOAP requests (stats.go).
	reqErrs *requestErrors
	// unconfirmedDeletes holds "router-URL service-type" for each service
	// found to lack GetSpecificPortMappingEntry, so that the log says so
	// once (delete_listed.go).
	unconfirmedDeletes sync.Map

	// Seams for tests: the routing table and the SSDP search.
	defaultGateways func() ([]netip.Addr, error)
	search          func(ctx context.Context, targets []string, answer func(searchAnswer)) error
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	dialer := newRouterDialer()
	c := &Client{
		dialer:           dialer,
		requestTimeout:   cfg.RequestTimeout,
		discoveryTimeout: cfg.DiscoveryTimeout,
		maxMappings:      cfg.MaxMappings,
		logger:           cfg.Logger,
		httpClient:       newHTTPClient(dialer),
		reqErrs:          &requestErrors{},
		defaultGateways:  defaultGateways,
		search:           ssdpSearch,
	}
	for _, u := range cfg.IGDURLs {
		if u = strings.TrimSpace(u); u != "" {
			c.igdURLs = append(c.igdURLs, u)
		}
	}
	if c.requestTimeout <= 0 {
		c.requestTimeout = DefaultRequestTimeout
	}
	if c.discoveryTimeout <= 0 {
		c.discoveryTimeout = DefaultDiscoveryTimeout
	}
	c.discoveryTimeout = max(c.discoveryTimeout, time.Second)
	if c.maxMappings <= 0 || c.maxMappings > 65536 {
		c.maxMappings = DefaultMaxMappings
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Gateways returns the routers to watch: the configured ones, or else what
// discovery finds at the default gateway. With several configured, the ones
// that answer are returned together with an error naming the others.
// Descriptions of one router (the FRITZ!Box's IGD:1 and IGD:2 pair, one
// description under two spellings of its URL) come as one Gateway: see
// mergeGateways.
func (c *Client) Gateways(ctx context.Context) ([]*Gateway, error) {
	gws, err := c.gateways(ctx)
	merged := mergeGateways(gws)
	for _, gw := range merged {
		if len(gw.Twins) > 0 {
			c.logger.Debug("router announces several descriptions of one port mapping table; watching one", "router", gw.ID, "url", gw.URL, "twins", gw.Twins)
		}
	}
	return merged, err
}

func (c *Client) gateways(ctx context.Context) ([]*Gateway, error) {
	if len(c.igdURLs) == 0 {
		return c.Discover(ctx)
	}
	gws := make([]*Gateway, len(c.igdURLs))
	errs := make([]error, len(c.igdURLs))
	var wg sync.WaitGroup
	for i, u := range c.igdURLs {
		wg.Go(func() { gws[i], errs[i] = c.fetchGateway(ctx, u) })
	}
	wg.Wait()
	var found []*Gateway
	for _, gw := range gws {
		if gw != nil {
			c.logSkipped(gw)
			found = append(found, gw)
		}
	}
	err := errors.Join(errs...)
	if len(found) == 0 {
		// Each error names its URL.
		return nil, fmt.Errorf("%w: %w", ErrNoGateway, err)
	}
	return found, err
}

func (c *Client) logSkipped(gw *Gateway) {
	for _, s := range gw.Skipped {
		c.logger.Warn("router offers a connection service doorman cannot use", "router", gw.URL, "reason", s)
	}
}
