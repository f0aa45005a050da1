package watcher

// A router's identity. A router is known by what it is, its root device UDN,
// and where it is, its host, not by the URL of its description: a router
// that reboots may serve its description on another port (miniupnpd picks
// a random one unless told), and any LAN device can announce the router's
// UUID with another spelling of its URL. Shares, rules and questions are
// kept under the identity (Mapping.Router, Key.Router), so that a moved
// description keeps them.
//
// Descriptions on one host that lead to the same table are one router, and
// it is watched once (mergeGateways).
//
// Router quirks handled here:
//   - the AVM FRITZ!Box announces two descriptions on one address and port,
//     igddesc.xml (InternetGatewayDevice:1, WANIPConnection:1 at
//     /igdupnp/control/WANIPConn1) and igd2desc.xml (InternetGatewayDevice:2,
//     WANIPConnection:2 at /igd2upnp/control/WANIPConn1), and both serve one
//     port mapping table. Their UDNs differ: the 7590's igddesc.xml
//     (testdata/routers/avm-fritzbox7590-rootdesc.xml) has WANDevice
//     uuid:76802409-bccb-40e7-8e6b-… and WANConnectionDevice
//     uuid:76802409-bccb-40e7-8e6a-…, while a 7490's igd2desc.xml has the
//     root uuid:75802409-bccb-40e7-9f6c-… where igddesc.xml has …-8e6c-…
//     (https://github.com/home-assistant/core/issues/43014), so a shared UDN
//     cannot tell the pair. What they share is the connection service: the
//     same serviceId (urn:upnp-org:serviceId:WANIPConn1) of the same kind
//     on the same HTTP server, in two versions of the device. That is the
//     test (twinDescriptions), and the IGD:2 description is the one watched;
//   - some routers make up a new UUID at every boot: storage keeps their
//     shares when the only router it knows on that host comes back with
//     another UDN (storage.Tx.AdoptRouter).

import (
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
)

// RouterID returns the identity of the router with root device UDN udn on
// host: "uuid:…@192.168.77.1". udn may be empty for a description without
// one.
func RouterID(udn, host string) string {
	return strings.ToLower(strings.TrimSpace(udn)) + "@" + normalizeHost(host)
}

// RouterHost names a router for people by its host, which is what they know
// it by. It takes a router identity (Mapping.Router) or, from databases of
// older versions, a description URL.
func RouterHost(router string) string {
	if strings.Contains(router, "://") {
		if u, err := url.Parse(router); err == nil && u.Hostname() != "" {
			return normalizeHost(u.Hostname())
		}
		return router
	}
	if i := strings.LastIndex(router, "@"); i >= 0 {
		return router[i+1:]
	}
	return router
}

// RouterUDN returns the UDN part of a router identity, "" if it has none
// or it is a description URL, as databases of older versions hold.
func RouterUDN(router string) string {
	if strings.Contains(router, "://") {
		return ""
	}
	udn, _, _ := strings.Cut(router, "@")
	return udn
}

// normalizeHost writes an address the one way: IPv4-mapped IPv6
// ([::ffff:192.168.77.1]) as IPv4, IPv6 without brackets and zone-free
// comparisons left to netip, names in lower case.
func normalizeHost(host string) string {
	host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(host), "["), "]")
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return strings.ToLower(host)
}

// normalizeURL writes a description URL the one way, for comparison: scheme
// and host in lower case, IPv4-mapped IPv6 as IPv4, the port without
// leading zeros and left out when it is the scheme's default, the path
// cleaned of "//", "/./" and "/../", and no query or fragment. Any LAN
// device can announce the router's UUID with another spelling of its URL
// (":05000", "//rootDesc.xml", "?x"); spelled the one way, it is the same
// URL and moves nothing.
func normalizeURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("watcher: %q is not a URL: %w", raw, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Hostname() == "" || u.Opaque != "" {
		return "", fmt.Errorf("watcher: %q is not an http:// URL", raw)
	}
	host := normalizeHost(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("watcher: %q has a bad port", raw)
		}
		if !(scheme == "http" && n == 80) && !(scheme == "https" && n == 443) {
			host += ":" + strconv.Itoa(n)
		}
	}
	p := "/"
	if u.Path != "" {
		p = path.Clean("/" + u.Path)
	}
	return scheme + "://" + host + p, nil
}

// sameURL reports whether a and b are spellings of one URL.
func sameURL(a, b string) bool {
	na, err := normalizeURL(a)
	if err != nil {
		return a == b
	}
	nb, err := normalizeURL(b)
	return err == nil && na == nb
}

// gatewayHost returns the normalised host of a gateway's description URL.
func gatewayHost(descURL string) string {
	u, err := url.Parse(descURL)
	if err != nil {
		return ""
	}
	return normalizeHost(u.Hostname())
}

// sharesUDN reports whether two descriptions name a device in common.
func sharesUDN(a, b *Gateway) bool {
	for _, u := range a.udns {
		if slices.Contains(b.udns, u) {
			return true
		}
	}
	return false
}

// twinDescriptions reports whether a and b describe one table in two
// versions of the device, as the FRITZ!Box's igddesc.xml and igd2desc.xml
// do: same host and port, and every connection service of one has a
// counterpart of the same kind (WANIPConnection, WANPPPConnection) with the
// same serviceId in the other, in another version.
func twinDescriptions(a, b *Gateway) bool {
	ua, errA := url.Parse(a.URL)
	ub, errB := url.Parse(b.URL)
	if errA != nil || errB != nil || normalizeHost(ua.Hostname()) != normalizeHost(ub.Hostname()) || ua.Port() != ub.Port() {
		return false
	}
	if a.IGDVersion() == b.IGDVersion() || len(a.Services) != len(b.Services) {
		return false
	}
	for _, sa := range a.Services {
		if !slices.ContainsFunc(b.Services, func(sb *Service) bool { return twinServices(sa, sb) }) {
			return false
		}
	}
	return true
}

func twinServices(a, b *Service) bool {
	ma := connectionServiceType.FindStringSubmatch(a.Type)
	mb := connectionServiceType.FindStringSubmatch(b.Type)
	return ma != nil && mb != nil && ma[2] == mb[2] && ma[3] != mb[3] && a.ID != "" && a.ID == b.ID
}

// sameRouter reports whether two descriptions on one host are one router:
// they name a device in common (one description under two URLs), or they
// are twins.
func sameRouter(a, b *Gateway) bool {
	if gatewayHost(a.URL) != gatewayHost(b.URL) {
		return false
	}
	for _, u := range append([]string{a.URL}, a.Twins...) {
		if sameURL(u, b.URL) {
			return true
		}
	}
	return sharesUDN(a, b) || twinDescriptions(a, b)
}

// preferGateway reports whether a is the better description of one router
// to watch: IGD:2 over IGD:1 (its WANIPConnection:2 also lists IPv6
// pinholes' neighbours and has GetListOfPortMappings), then the one with
// the better first service.
func preferGateway(a, b *Gateway) bool {
	if va, vb := a.IGDVersion(), b.IGDVersion(); va != vb {
		return va > vb
	}
	return serviceRank(a.Services[0].Type) < serviceRank(b.Services[0].Type)
}

// mergeGateways folds descriptions of one router into one Gateway, the
// preferred description, which also carries the other descriptions' URLs
// (Twins) and UDNs, so that their announcements are recognised. Order is
// kept otherwise.
func mergeGateways(gws []*Gateway) []*Gateway {
	var out []*Gateway
	for _, gw := range gws {
		i := slices.IndexFunc(out, func(o *Gateway) bool { return sameRouter(o, gw) })
		if i < 0 {
			out = append(out, gw)
			continue
		}
		out[i] = mergeTwin(out[i], gw)
	}
	return out
}

// mergeTwin returns the preferred of two descriptions of one router, with
// the other's URL and UDNs added.
func mergeTwin(a, b *Gateway) *Gateway {
	keep, other := a, b
	if preferGateway(b, a) {
		keep, other = b, a
	}
	merged := *keep
	merged.Services = make([]*Service, len(keep.Services))
	for i, sk := range keep.Services {
		svc := *sk
		svc.Twins = slices.Clone(sk.Twins)
		for _, so := range other.Services {
			for _, t := range append([]string{so.Type}, so.Twins...) {
				if t != svc.Type && twinServices(sk, so) && !slices.Contains(svc.Twins, t) {
					svc.Twins = append(svc.Twins, t)
				}
			}
		}
		merged.Services[i] = &svc
	}
	merged.udns = slices.Clone(keep.udns)
	for _, u := range other.udns {
		if !slices.Contains(merged.udns, u) {
			merged.udns = append(merged.udns, u)
		}
	}
	merged.Twins = slices.Clone(keep.Twins)
	for _, u := range append([]string{other.URL}, other.Twins...) {
		if !sameURL(u, merged.URL) && !slices.ContainsFunc(merged.Twins, func(t string) bool { return sameURL(t, u) }) {
			merged.Twins = append(merged.Twins, u)
		}
	}
	return &merged
}

// UDNs returns the UDNs of the router's devices, lower case, its twins'
// included: the identities it may have been stored under.
func (g *Gateway) UDNs() []string { return slices.Clone(g.udns) }

// Host returns the router's host, normalised.
func (g *Gateway) Host() string { return gatewayHost(g.URL) }

// isRouter reports whether id names this router: its identity, or one of
// its UDNs on its host. A router identity without a UDN match still names
// the router when only is set (the only router watched on that host): a
// router that made up a new UUID at its last boot is the same router.
func (g *Gateway) isRouter(id string, only bool) bool {
	if id == g.ID {
		return true
	}
	if RouterHost(id) != g.Host() {
		return false
	}
	return only || slices.Contains(g.udns, RouterUDN(id))
}
