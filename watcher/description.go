package watcher

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/huin/goupnp"
)

// Gateway is an Internet Gateway Device and the WAN connection services on it
// that hold port mappings.
type Gateway struct {
	// URL is the root description URL, where the router is now.
	URL string
	// ID is the router's identity (RouterID: root UDN and host); it names
	// the router in listings (Mapping.Router).
	ID string
	// Twins are the URLs of other descriptions of the same router, merged
	// into this one (the FRITZ!Box's igddesc.xml next to igd2desc.xml; see
	// identity.go).
	Twins        []string
	DeviceType   string
	FriendlyName string
	Manufacturer string
	ModelName    string
	// Services are ordered by preference: WANIPConnection:2,
	// WANIPConnection:1, WANPPPConnection:1, then anything else.
	Services []*Service
	// Skipped says which connection services were found but cannot be
	// used, and why.
	Skipped []string
	// udns are the UDNs of the root device and its embedded devices, lower
	// case: SSDP announcements name the device they are about by UDN.
	udns []string
}

// IGDVersion returns the version of the InternetGatewayDevice type (1 or 2),
// or 0 if the device type does not say.
func (g *Gateway) IGDVersion() int {
	return typeVersion(g.DeviceType)
}

// Service is one WAN connection service of a gateway.
type Service struct {
	Type        string
	ID          string
	ControlURL  string
	EventSubURL string
	// Twins are the types of the services of twin descriptions that hold
	// the same table (the FRITZ!Box's WANIPConnection:1 next to its
	// WANIPConnection:2; see identity.go).
	Twins  []string
	client portMappingClient
}

// ShortType returns the service type without its URN prefix, for people:
// "WANIPConnection:2".
func (s *Service) ShortType() string {
	return ShortServiceType(s.Type)
}

// ShortServiceType is Service.ShortType for a serviceType string, as
// Mapping.Service holds it.
func ShortServiceType(serviceType string) string {
	if i := strings.LastIndex(serviceType, ":service:"); i >= 0 {
		return serviceType[i+len(":service:"):]
	}
	return serviceType
}

// connectionServiceType matches the WAN connection services that hold port
// mappings. Huawei's HG531 declares them in the urn:dslforum-org namespace
// (TR-064 style) inside a plain UPnP description, and the Orange Livebox
// declares a WANPPPConnection:2 that no spec defines; both work like the
// standard ones.
var connectionServiceType = regexp.MustCompile(`^urn:(schemas-upnp-org|dslforum-org):service:(WANIPConnection|WANPPPConnection):([0-9]+)$`)

// serviceRank orders connection services by preference; lower is better.
func serviceRank(serviceType string) int {
	m := connectionServiceType.FindStringSubmatch(serviceType)
	if m == nil {
		return 1 << 20
	}
	version, _ := strconv.Atoi(m[3])
	switch {
	case m[2] == "WANIPConnection" && version == 2:
		return 0
	case m[2] == "WANIPConnection" && version == 1:
		return 1
	case m[2] == "WANPPPConnection" && version == 1:
		return 2
	case m[2] == "WANIPConnection":
		return 10 + version
	default:
		return 100 + version
	}
}

func typeVersion(t string) int {
	i := strings.LastIndex(t, ":")
	if i < 0 {
		return 0
	}
	v, err := strconv.Atoi(strings.TrimSpace(t[i+1:]))
	if err != nil {
		return 0
	}
	return v
}

// fetchGateway reads a root description and sets up its connection services.
func (c *Client) fetchGateway(ctx context.Context, rawURL string) (*Gateway, error) {
	descURL, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil || (descURL.Scheme != "http" && descURL.Scheme != "https") || descURL.Host == "" {
		return nil, fmt.Errorf("watcher: %q is not an http:// URL of a root description", rawURL)
	}
	ctx, cancel := withTimeout(ctx, c.requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, descURL.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("watcher: unable to build request for %s: %w", descURL, err)
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("watcher: unable to fetch root description %s: %w", descURL, ctxErr)
		}
		return nil, fmt.Errorf("watcher: unable to fetch root description %s: %w", descURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("watcher: unable to fetch root description %s: HTTP %s", descURL, resp.Status)
	}
	gw, err := c.parseDescription(descURL, resp.Body)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, fmt.Errorf("watcher: unable to read root description %s: %w", descURL, err)
	}
	return gw, nil
}

// parseDescription reads a root description fetched from descURL.
func (c *Client) parseDescription(descURL *url.URL, body io.Reader) (*Gateway, error) {
	var root goupnp.RootDevice
	d := newXMLDecoder(body, maxDescriptionBytes)
	d.DefaultSpace = goupnp.DeviceXMLNamespace
	if err := d.Decode(&root); err != nil {
		return nil, fmt.Errorf("malformed description: %w", err)
	}

	base := descURL
	if s := strings.TrimSpace(root.URLBaseStr); s != "" {
		// A URLBase that cannot be used is ignored rather than fatal: the
		// description URL is the base the spec falls back to.
		if u, err := url.Parse(s); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			base = pinHost(u, descURL)
		}
	}

	gw := &Gateway{
		URL:          descURL.String(),
		ID:           RouterID(cleanText(root.Device.UDN, 200), descURL.Hostname()),
		DeviceType:   cleanText(strings.TrimSpace(root.Device.DeviceType), 200),
		FriendlyName: cleanText(strings.TrimSpace(root.Device.FriendlyName), 200),
		Manufacturer: cleanText(strings.TrimSpace(root.Device.Manufacturer), 200),
		ModelName:    cleanText(strings.TrimSpace(root.Device.ModelName), 200),
	}

	type candidate struct {
		svc   *Service
		rank  int
		order int
	}
	var found []candidate
	order := 0
	root.Device.VisitDevices(func(dev *goupnp.Device) {
		if udn := strings.ToLower(strings.TrimSpace(dev.UDN)); udn != "" && len(udn) <= 200 {
			gw.udns = append(gw.udns, udn)
		}
		// Within one WANConnectionDevice, a WANIPConnection offered in two
		// versions is one connection: keep the preferred version. An IP and
		// a PPP connection side by side (DD-WRT v24 x86) are two.
		best := map[string]candidate{}
		for i := range dev.Services {
			s := &dev.Services[i]
			st := strings.TrimSpace(s.ServiceType)
			m := connectionServiceType.FindStringSubmatch(st)
			if m == nil {
				continue
			}
			order++
			control, err := resolveURL(base, descURL, s.ControlURL.Str)
			if err != nil {
				gw.Skipped = append(gw.Skipped, fmt.Sprintf("%s: control URL %q: %v", cleanText(st, 100), cleanText(s.ControlURL.Str, 100), err))
				continue
			}
			// Events are optional; a bad event URL only means polling.
			event, _ := resolveURL(base, descURL, s.EventSubURL.Str)
			cand := candidate{
				svc: &Service{
					Type:        st,
					ID:          cleanText(strings.TrimSpace(s.ServiceId), 200),
					ControlURL:  control,
					EventSubURL: event,
					client:      c.newSOAPConnection(control, st),
				},
				rank:  serviceRank(st),
				order: order,
			}
			kind := m[2]
			if prev, ok := best[kind]; !ok || cand.rank < prev.rank {
				best[kind] = cand
			}
		}
		for _, cand := range best {
			found = append(found, cand)
		}
	})
	sort.SliceStable(found, func(i, j int) bool {
		if found[i].rank != found[j].rank {
			return found[i].rank < found[j].rank
		}
		return found[i].order < found[j].order
	})
	seen := map[string]bool{}
	for _, cand := range found {
		// Two entries with one control URL are one table.
		if seen[cand.svc.ControlURL] {
			continue
		}
		seen[cand.svc.ControlURL] = true
		gw.Services = append(gw.Services, cand.svc)
	}
	if len(gw.Services) == 0 {
		if len(gw.Skipped) > 0 {
			return nil, fmt.Errorf("no usable WAN connection service (%s)", strings.Join(gw.Skipped, "; "))
		}
		return nil, fmt.Errorf("no WANIPConnection or WANPPPConnection service in %q: not an Internet Gateway Device", gw.FriendlyName)
	}
	return gw, nil
}

// resolveURL resolves a control or event URL from a description against base
// (URLBase, or the description URL).
//
// Router quirks handled here:
//   - whitespace and line breaks around the URL (CRLF-formatted descriptions);
//   - URLs that begin "uuid:…/WANIPConnection:1" without a slash (Broadcom
//     stacks write them with one, but the colon would make a bare one parse
//     as a scheme), read as a path;
//   - URLBase with a trailing slash and control URLs with a leading one
//     (Actiontec GT784WN), which naive joining turns into "//";
//   - query-string control URLs (D-Link DIR-890L "/soap.cgi?service=…",
//     DD-WRT "/control?WANIPConnection"), kept as they are;
//   - absolute URLs on other ports (D-Link DIR-655), kept, but see pinHost.
func resolveURL(base, descURL *url.URL, ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", fmt.Errorf("empty")
	}
	u, err := url.Parse(ref)
	if err == nil && u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" {
		u, err = url.Parse("./" + ref)
	}
	if err != nil {
		return "", fmt.Errorf("not a URL")
	}
	resolved := base.ResolveReference(u)
	if resolved.Scheme != "http" && resolved.Scheme != "https" {
		return "", fmt.Errorf("not an http URL")
	}
	// "http:0" is an opaque URL: it has no host to pin, and its String
	// would ignore the one pinHost sets. Found by FuzzParseDescription.
	if resolved.Opaque != "" {
		return "", fmt.Errorf("no host in %q", ref)
	}
	if resolved.Port() != "" {
		if p, err := strconv.Atoi(resolved.Port()); err != nil || p < 1 || p > 65535 {
			return "", fmt.Errorf("bad port %q", resolved.Port())
		}
	}
	return pinHost(resolved, descURL).String(), nil
}

// pinHost keeps doorman talking to the host it fetched the description from.
// A URLBase or an absolute control URL naming another host is either stale
// (routers that changed LAN address keep announcing the old one, as in
// tailscale's MikroTik capture) or an attempt to send doorman elsewhere; the
// port is kept, since routers do serve control URLs on other ports.
func pinHost(u, descURL *url.URL) *url.URL {
	if strings.EqualFold(u.Hostname(), descURL.Hostname()) {
		return u
	}
	pinned := *u
	if port := u.Port(); port != "" {
		pinned.Host = net.JoinHostPort(descURL.Hostname(), port)
	} else {
		pinned.Host = descURL.Hostname()
		if strings.Contains(pinned.Host, ":") {
			pinned.Host = "[" + pinned.Host + "]"
		}
	}
	return &pinned
}
