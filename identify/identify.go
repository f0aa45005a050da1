// Package identify tells the owner which device opened a port share and
// which app it probably is, for alerts and listings.
//
// A Device is named three ways, each of which may be missing:
//
//   - Name: the reverse DNS name through the system resolver. Home routers
//     answer for the names their DHCP clients gave (nas.fritz.box,
//     laptop.lan), so the name is chosen by the device itself and is
//     sanitised before anyone sees it.
//   - MAC: from the kernel's neighbour table, so only for devices on a
//     network doorman's machine is directly on. A trust rule can follow the
//     MAC when DHCP hands the device another address.
//   - Vendor: from the MAC's first three octets (the OUI) in the IEEE MA-L
//     registry: Debian's /usr/share/ieee-data/oui.txt when the ieee-data
//     package is installed, else a copy embedded at build time (oui/,
//     refreshed with go generate). Phones on Wi-Fi mostly use a random,
//     locally administered MAC ("private address"); its octets name no
//     vendor, and Device says so with Randomized.
//
// AppOf names the app from the share's description and ports (app.go).
// Whether a port is dangerous is approvals.RiskOf's business, not this
// package's: the renderer shows both.
package identify

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Device is what doorman knows about the device behind a LAN address.
// Unknown parts are empty.
type Device struct {
	IP   string
	Name string // reverse DNS name without trailing dot, "" if none
	MAC  string // lower-case aa:bb:cc:dd:ee:ff, "" if unknown
	// Vendor is the MAC's registered vendor, shortened ("Apple",
	// "Samsung Electronics"); "" if unknown or Randomized.
	Vendor string
	// Randomized reports a locally administered MAC (phones' private
	// addresses), whose OUI means nothing.
	Randomized bool
}

// Resolver does reverse DNS lookups; *net.Resolver is one.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Defaults for Config.
const (
	DefaultLookupTimeout = time.Second
	DefaultCacheTTL      = 10 * time.Minute
	DefaultNeighbourFile = "/proc/net/arp"
	// DefaultOUIFile is IEEE's MA-L registry as Debian's ieee-data package
	// installs it.
	DefaultOUIFile = "/usr/share/ieee-data/oui.txt"
)

// Config configures an Identifier. The zero value is ready to use.
type Config struct {
	// Resolver does reverse lookups; nil means net.DefaultResolver.
	Resolver Resolver
	// LookupTimeout bounds one Device call, the reverse lookup included;
	// 0 means DefaultLookupTimeout.
	LookupTimeout time.Duration
	// CacheTTL is how long a reverse lookup's answer, a name or "no name",
	// is reused, so that a flood of shares does not flood DNS; 0 means
	// DefaultCacheTTL. Lookups that failed otherwise (timeouts) are
	// retried after at most a minute.
	CacheTTL time.Duration
	// NeighbourFile is the IPv4 neighbour table; "" means
	// DefaultNeighbourFile.
	NeighbourFile string
	// Probe, when the neighbour table does not know an address, makes the
	// kernel look it up and reports whether that is worth waiting for. nil
	// means one empty UDP datagram to the discard port (9), and only to a
	// private address on a network this machine is directly on. A setup
	// that must send nothing sets a func that returns false.
	Probe func(ctx context.Context, ip netip.Addr) bool
	// OUIFiles are IEEE MA-L registries in oui.txt form, tried in order;
	// nil means []string{DefaultOUIFile}. The embedded table is the last
	// resort either way.
	OUIFiles []string
	// Now returns the time, for the caches; nil means time.Now.
	Now func() time.Time
	// Logger gets debug lines about missing sources; nil discards them.
	Logger *slog.Logger
}

// Identifier answers which device is behind an address. It is safe for
// concurrent use.
type Identifier struct {
	resolver  Resolver
	timeout   time.Duration
	ttl       time.Duration
	neighFile string
	ouiFiles  []string
	now       func() time.Time
	log       *slog.Logger
	probe     func(ctx context.Context, ip netip.Addr) bool
	// interfaces lists this machine's interfaces; a field for tests.
	interfaces func() ([]net.Interface, error)

	oui ouiTable

	mu      sync.Mutex // guards names, lookups and probed
	names   map[netip.Addr]nameEntry
	lookups map[netip.Addr]*nameLookup
	probed  map[netip.Addr]time.Time

	// neighMu guards the neighbour table, read under it so that
	// concurrent calls share one reading; a separate lock, so that a
	// reading does not hold up the name cache.
	neighMu     sync.Mutex
	neighTable  map[netip.Addr][6]byte
	neighReadAt time.Time
	neighWarned bool
}

// New returns an Identifier. It reads nothing yet: the vendor table is
// loaded on the first Device call that needs it.
func New(cfg Config) *Identifier {
	id := &Identifier{
		resolver:   cfg.Resolver,
		timeout:    cfg.LookupTimeout,
		ttl:        cfg.CacheTTL,
		neighFile:  cfg.NeighbourFile,
		ouiFiles:   cfg.OUIFiles,
		now:        cfg.Now,
		log:        cfg.Logger,
		probe:      cfg.Probe,
		interfaces: net.Interfaces,
		names:      make(map[netip.Addr]nameEntry),
		lookups:    make(map[netip.Addr]*nameLookup),
		probed:     make(map[netip.Addr]time.Time),
	}
	if id.resolver == nil {
		id.resolver = net.DefaultResolver
	}
	if id.timeout <= 0 {
		id.timeout = DefaultLookupTimeout
	}
	if id.ttl <= 0 {
		id.ttl = DefaultCacheTTL
	}
	if id.neighFile == "" {
		id.neighFile = DefaultNeighbourFile
	}
	if id.ouiFiles == nil {
		id.ouiFiles = []string{DefaultOUIFile}
	}
	if id.now == nil {
		id.now = time.Now
	}
	if id.log == nil {
		id.log = slog.New(slog.DiscardHandler)
	}
	if id.probe == nil {
		id.probe = probeUDP
	}
	return id
}

// Device tells what is known about the device at ip. It never fails:
// what cannot be found out stays empty. It returns within the lookup
// timeout (or earlier, when ctx ends): the reverse lookup, the MAC and the
// vendor table are looked for side by side, and whatever is not there by
// then is left out; a late DNS answer still lands in the cache for the next
// call.
func (id *Identifier) Device(ctx context.Context, ip string) Device {
	d := Device{IP: ip}
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil || addr.Zone() != "" {
		return d
	}
	addr = addr.Unmap()
	d.IP = addr.String()

	ctx, cancel := context.WithTimeout(ctx, id.timeout)
	defer cancel()
	// Start loading the vendor table now: it runs alongside the lookups.
	oui := id.loadOUI()
	name := make(chan string, 1)
	go func() { name <- id.reverseName(ctx, addr) }()

	if mac, ok := id.lookupMAC(ctx, addr); ok {
		d.MAC = formatMAC(mac)
		d.Randomized = locallyAdministered(mac)
		if !d.Randomized {
			if t := oui.wait(ctx.Done()); t != nil {
				d.Vendor, _ = t.Lookup(macPrefix(mac))
			}
		}
	}
	d.Name = <-name
	return d
}
