package identify

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"
)

const (
	// failedLookupTTL is how long a lookup that failed for another reason
	// than "no such name" (a timeout, a DNS server that is down) is
	// remembered: long enough not to hammer a struggling server, short
	// enough that the name shows up soon after it is back.
	failedLookupTTL = time.Minute
	// maxNames bounds the name cache. A home LAN has a few dozen devices;
	// a router listing shares for thousands of addresses is broken or
	// hostile and must not grow doorman's memory without limit.
	maxNames = 4096
	// MaxNameLen is the longest device name Device returns.
	MaxNameLen = 64
)

type nameEntry struct {
	name    string
	expires time.Time
}

// nameLookup is one reverse lookup in progress; callers for the same
// address wait for it instead of asking the resolver again.
type nameLookup struct {
	done chan struct{}
	name string // set before done is closed
}

// reverseName returns the sanitised reverse DNS name of ip, "" if there is
// none or it does not arrive before ctx ends.
func (id *Identifier) reverseName(ctx context.Context, ip netip.Addr) string {
	if ip.IsUnspecified() || ip.IsMulticast() {
		return ""
	}
	id.mu.Lock()
	if e, ok := id.names[ip]; ok && id.now().Before(e.expires) {
		id.mu.Unlock()
		return e.name
	}
	l, ok := id.lookups[ip]
	if !ok {
		l = &nameLookup{done: make(chan struct{})}
		id.lookups[ip] = l
		go id.lookupName(ctx, ip, l)
	}
	id.mu.Unlock()
	select {
	case <-l.done:
		return l.name
	case <-ctx.Done():
		return ""
	}
}

// lookupName asks the resolver and caches the answer. It gets its own
// timeout, not the caller's: a caller that gives up early must not leave
// the others that wait for the same address without an answer, and a late
// answer still fills the cache for the next alert.
func (id *Identifier) lookupName(ctx context.Context, ip netip.Addr, l *nameLookup) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), id.timeout)
	defer cancel()
	names, err := id.resolver.LookupAddr(ctx, ip.String())
	name := pickName(names)
	ttl := id.ttl
	if err != nil && name == "" {
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			ttl = min(ttl, failedLookupTTL)
		}
		id.log.Debug("identify: no reverse DNS name", "ip", ip, "err", err)
	} else if name == "" && len(names) > 0 {
		id.log.Debug("identify: reverse DNS names dropped as invalid", "ip", ip, "count", len(names))
	}

	id.mu.Lock()
	now := id.now()
	if len(id.names) >= maxNames {
		for a, e := range id.names {
			if !now.Before(e.expires) || len(id.names) >= maxNames*3/4 {
				delete(id.names, a)
			}
		}
	}
	id.names[ip] = nameEntry{name: name, expires: now.Add(ttl)}
	delete(id.lookups, ip)
	l.name = name
	id.mu.Unlock()
	close(l.done)
}

// pickName chooses the name to show among the PTR answers: the first that
// is a clean hostname as it stands, else the first that survives cleaning.
func pickName(names []string) string {
	for _, n := range names {
		if c := cleanHostname(n); c != "" && c == strings.TrimSuffix(n, ".") {
			return c
		}
	}
	for _, n := range names {
		if c := cleanHostname(n); c != "" {
			return c
		}
	}
	return ""
}

// cleanHostname makes a reverse DNS name fit to show. The name comes from
// the LAN: home routers answer with the hostname each device gave in its
// DHCP request, so a hostile device chooses it. Only letters, digits, '-',
// '_' and '.' are kept, empty labels and the trailing dot are dropped, the
// length is limited, and a name that reads as an IP address (a device
// calling itself "192.168.178.1" to pass for the router) is refused.
func cleanHostname(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 4*MaxNameLen; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		case c == '.':
			// No empty labels: "nas..lan" and a leading dot say nothing.
			if b.Len() > 0 && !strings.HasSuffix(b.String(), ".") {
				b.WriteByte('.')
			}
		}
	}
	name := strings.Trim(b.String(), ".-_")
	if len(name) > MaxNameLen {
		// Cut at a label boundary when there is one: "nas.fritz" reads
		// better than "nas.fr".
		name = name[:MaxNameLen]
		if i := strings.LastIndexByte(name, '.'); i > 0 {
			name = name[:i]
		}
		name = strings.TrimRight(name, ".-_")
	}
	if name == "" || strings.Trim(name, "0123456789.") == "" {
		return ""
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return ""
	}
	return name
}
