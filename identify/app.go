package identify

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/doorman-upnp/doorman/watcher"
)

// App is the app AppOf recognised behind a share.
type App struct {
	Name string // short, for people: "Plex Media Server"
	// Why says what matched, for the owner to judge, in English: "port
	// 32400/TCP", `description "Plex Media Server"`, "opened with
	// NAT-PMP". Basis and Detail say the same for a translation.
	Why string
	// Basis is what matched, and Detail what of it: the quoted
	// description, the port and protocol ("32400/TCP"), or the protocol
	// that opened the share.
	Basis  AppBasis
	Detail string
}

// AppBasis is what an app was recognised by.
type AppBasis string

const (
	ByDescription AppBasis = "description"
	ByPort        AppBasis = "port"
	// ByOrigin rests on the protocol alone: a hint, not a name.
	ByOrigin AppBasis = "origin"
)

// descRule recognises an app by the description it gives its shares.
// Patterns are anchored at the start, and at the end where the app writes a
// fixed format, so that "Not Plex", "Plexiglass" or "Transmission at 51413;
// something else" are not taken for the app. A device can still lie with
// the exact text; that is why Why says what matched.
type descRule struct {
	re   *regexp.Regexp
	name string
}

// descRules, most specific first. The formats are the apps' own, from
// their sources where they are open: libtorrent writes "<user agent> at
// <ip>:<port>", Apple's mDNSResponder (LegacyNATTraversal.c) "iC<port>",
// miniupnpc "libminiupnpc" when the program gives no description. They are
// compiled on first use: compiling them at start-up added a quarter of a
// millisecond to every doorman command, `doorman list` included.
var descRules = sync.OnceValue(func() []descRule {
	sources := []struct{ pattern, name string }{
		{`(?i)^Plex Media Server\b`, "Plex Media Server"},
		{`(?i)^Transmission at [0-9]{1,5}$`, "Transmission (BitTorrent)"},
		{`(?i)^qBittorrent/[^ ]+ at [^ ]+:[0-9]{1,5}$`, "qBittorrent (BitTorrent)"},
		{`(?i)^Deluge/[^ ]+( libtorrent/[^ ]+)? at [^ ]+:[0-9]{1,5}$`, "Deluge (BitTorrent)"},
		{`(?i)^libtorrent/[^ ]+ at [^ ]+:[0-9]{1,5}$`, "BitTorrent client (libtorrent)"},
		{`(?i)^(uTorrent|µTorrent) \((TCP|UDP)\)$`, "µTorrent (BitTorrent)"},
		{`(?i)^BitTorrent \((TCP|UDP)\)$`, "BitTorrent client"},
		{`(?i)^syncthing-[0-9]{1,5}$`, "Syncthing"},
		{`(?i)^tailscale-portmap$`, "Tailscale"},
		{`^iC[0-9]{1,5}$`, "Apple device (Bonjour)"},
		{`^libminiupnpc$`, "upnpc or another miniupnpc program"},
		{`(?i)^Skype\b`, "Skype"},
		{`(?i)^WhatsApp\b`, "WhatsApp"},
		{`(?i)^(Microsoft )?Teams\b`, "Microsoft Teams"},
		{`(?i)^Zoom\b`, "Zoom"},
		{`(?i)^Xbox\b`, "Xbox"},
		{`(?i)^(PlayStation|PS[345])\b`, "PlayStation"},
		{`(?i)^Steam\b`, "Steam"},
		{`(?i)^Nintendo\b`, "Nintendo console"},
		{`(?i)^Teredo\b`, "Teredo (Windows IPv6 tunnel)"},
		{`(?i)^Minecraft\b`, "Minecraft"},
		{`(?i)^TeamSpeak\b`, "TeamSpeak"},
		{`(?i)^(Mumble|Murmur)\b`, "Mumble"},
		{`(?i)^Bitcoin\b`, "Bitcoin node"},
	}
	rules := make([]descRule, len(sources))
	for i, s := range sources {
		rules[i] = descRule{regexp.MustCompile(s.pattern), s.name}
	}
	return rules
})

// maxDescription bounds the descriptions AppOf reads: the apps above write
// short ones; a long text is no app's and is not worth matching.
const maxDescription = 128

// portRule recognises an app by the inside port, where the app listens by
// default. Only ports one app (or one kind of app) owns are here; a port
// like 8080 says nothing. Risky ports (SSH, RDP, SMB…) are approvals.RiskOf's.
type portRule struct {
	proto  string // "TCP", "UDP", or "" for both
	lo, hi uint16
	name   string
}

var portRules = []portRule{
	{"TCP", 32400, 32400, "Plex Media Server"},
	{"", 51413, 51413, "Transmission (BitTorrent)"},
	{"", 6881, 6889, "BitTorrent client"},
	{"", 22000, 22000, "Syncthing"},
	{"UDP", 41641, 41641, "Tailscale"},
	{"", 3074, 3074, "Xbox Live (an Xbox or a Windows game)"},
	{"", 9295, 9304, "PlayStation Remote Play"},
	{"", 27036, 27037, "Steam Remote Play"},
	{"", 27015, 27015, "Steam game server"},
	{"UDP", 3544, 3544, "Teredo (Windows IPv6 tunnel)"},
	{"TCP", 25565, 25565, "Minecraft server"},
	{"UDP", 19132, 19133, "Minecraft Bedrock server"},
	{"UDP", 2456, 2458, "Valheim server"},
	{"UDP", 34197, 34197, "Factorio server"},
	{"", 7777, 7777, "game server (Terraria, ARK, Satisfactory…)"},
	{"UDP", 28015, 28015, "Rust server"},
	{"UDP", 8211, 8211, "Palworld server"},
	{"UDP", 16261, 16262, "Project Zomboid server"},
	{"UDP", 9987, 9987, "TeamSpeak server"},
	{"", 64738, 64738, "Mumble server"},
	{"TCP", 8333, 8333, "Bitcoin node"},
}

// AppOf names the app behind a share, and says what gave it away.
//
// The description comes first: apps that write one write their name. Then
// the inside port with the protocol, for apps with a fixed default port.
// Last, a share opened with NAT-PMP or PCP, whose description the router
// wrote itself, gets "NAT-PMP client (often an Apple device)": Apple's
// devices are the main users of NAT-PMP and PCP in homes (Apple designed
// NAT-PMP), but torrent clients, Plex and Tailscale use them too, so this
// is a hint, and Why says it rests on the protocol alone. Anything else is
// unknown: false, and no guess.
func AppOf(m watcher.Mapping) (App, bool) {
	desc := strings.TrimSpace(m.Description)
	if desc != "" && len(desc) <= maxDescription {
		for _, r := range descRules() {
			if r.re.MatchString(desc) {
				q := quoteDescription(desc)
				return App{Name: r.name, Why: "description " + q, Basis: ByDescription, Detail: q}, true
			}
		}
	}
	proto := strings.ToUpper(strings.TrimSpace(m.Protocol))
	if proto == "TCP" || proto == "UDP" {
		for _, r := range portRules {
			if (r.proto == "" || r.proto == proto) && r.lo <= m.InternalPort && m.InternalPort <= r.hi {
				detail := fmt.Sprintf("%d/%s", m.InternalPort, proto)
				return App{Name: r.name, Why: "port " + detail, Basis: ByPort, Detail: detail}, true
			}
		}
	}
	switch m.Origin {
	case watcher.OriginNATPMP:
		return App{Name: "NAT-PMP client (often an Apple device)", Why: "opened with NAT-PMP", Basis: ByOrigin, Detail: "NAT-PMP"}, true
	case watcher.OriginPCP:
		return App{Name: "PCP client (often an Apple device)", Why: "opened with PCP", Basis: ByOrigin, Detail: "PCP"}, true
	}
	return App{}, false
}

// quoteDescription quotes a description for Why, escaping what is not
// printable; the matched descriptions are short, but keep it bounded.
func quoteDescription(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	return strconv.Quote(s)
}
