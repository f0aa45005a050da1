package identify

import (
	"strings"
	"testing"

	"github.com/doorman-upnp/doorman/watcher"
)

func TestAppOf(t *testing.T) {
	type share struct {
		proto string
		port  uint16 // inside port
		desc  string
		orig  watcher.Origin
	}
	tests := []struct {
		name    string
		share   share
		want    string // "" means unknown
		wantWhy string
	}{
		// Each app, by the description it writes.
		{"Plex", share{"TCP", 32400, "Plex Media Server", ""}, "Plex Media Server", `description "Plex Media Server"`},
		{"Transmission", share{"UDP", 51413, "Transmission at 51413", ""}, "Transmission (BitTorrent)", `description "Transmission at 51413"`},
		{"qBittorrent", share{"TCP", 6890, "qBittorrent/4.6.2 at 192.168.178.20:6890", ""}, "qBittorrent (BitTorrent)", ""},
		{"Deluge", share{"TCP", 58846, "Deluge/2.1.1 libtorrent/2.0.9 at 192.168.178.20:58846", ""}, "Deluge (BitTorrent)", ""},
		{"libtorrent", share{"UDP", 40000, "libtorrent/2.0.9 at 192.168.178.20:40000", ""}, "BitTorrent client (libtorrent)", ""},
		{"uTorrent", share{"TCP", 23456, "uTorrent (TCP)", ""}, "µTorrent (BitTorrent)", ""},
		{"µTorrent", share{"UDP", 23456, "µTorrent (UDP)", ""}, "µTorrent (BitTorrent)", ""},
		{"BitTorrent", share{"UDP", 23456, "BitTorrent (UDP)", ""}, "BitTorrent client", ""},
		{"Syncthing", share{"TCP", 22000, "syncthing-41234", ""}, "Syncthing", `description "syncthing-41234"`},
		{"Tailscale", share{"UDP", 41641, "tailscale-portmap", ""}, "Tailscale", ""},
		{"Skype", share{"UDP", 31337, "Skype UDP at 192.168.178.20:31337 (546)", ""}, "Skype", ""},
		{"WhatsApp", share{"UDP", 45000, "WhatsApp", ""}, "WhatsApp", ""},
		{"Teams", share{"UDP", 50010, "Teams media", ""}, "Microsoft Teams", ""},
		{"Microsoft Teams", share{"UDP", 50010, "Microsoft Teams", ""}, "Microsoft Teams", ""},
		{"Zoom", share{"UDP", 8801, "Zoom", ""}, "Zoom", ""},
		{"Xbox", share{"UDP", 3074, "Xbox (UDP 3074)", ""}, "Xbox", ""},
		{"PlayStation", share{"TCP", 9308, "PS5-123", ""}, "PlayStation", ""},
		{"Steam", share{"UDP", 27036, "Steam", ""}, "Steam", ""},
		{"Nintendo", share{"UDP", 45000, "Nintendo Switch", ""}, "Nintendo console", ""},
		{"Teredo", share{"UDP", 59123, "Teredo", ""}, "Teredo (Windows IPv6 tunnel)", ""},
		{"libminiupnpc", share{"TCP", 8080, "libminiupnpc", ""}, "upnpc or another miniupnpc program", `description "libminiupnpc"`},
		{"Apple UPnP fallback", share{"UDP", 4500, "iC4502", ""}, "Apple device (Bonjour)", ""},
		{"Minecraft by name", share{"TCP", 25570, "Minecraft Server", ""}, "Minecraft", ""},
		{"Bitcoin", share{"TCP", 8333, "Bitcoin 27.0", ""}, "Bitcoin node", ""},
		{"TeamSpeak", share{"UDP", 9987, "TeamSpeak 3 Server", ""}, "TeamSpeak", ""},
		{"case and spaces", share{"TCP", 1, "  PLEX MEDIA SERVER ", ""}, "Plex Media Server", ""},

		// Each app, by its default port.
		{"Plex port", share{"TCP", 32400, "", ""}, "Plex Media Server", "port 32400/TCP"},
		{"Plex port is TCP", share{"UDP", 32400, "", ""}, "", ""},
		{"Transmission port", share{"TCP", 51413, "my torrents", ""}, "Transmission (BitTorrent)", "port 51413/TCP"},
		{"BitTorrent range", share{"udp", 6885, "", ""}, "BitTorrent client", "port 6885/UDP"},
		{"Syncthing port", share{"UDP", 22000, "", ""}, "Syncthing", ""},
		{"Tailscale port", share{"UDP", 41641, "", ""}, "Tailscale", ""},
		{"Xbox Live port", share{"UDP", 3074, "", ""}, "Xbox Live (an Xbox or a Windows game)", ""},
		{"PlayStation Remote Play", share{"UDP", 9296, "", ""}, "PlayStation Remote Play", ""},
		{"Steam Remote Play", share{"TCP", 27036, "", ""}, "Steam Remote Play", ""},
		{"Steam game server", share{"UDP", 27015, "", ""}, "Steam game server", ""},
		{"Teredo port", share{"UDP", 3544, "", ""}, "Teredo (Windows IPv6 tunnel)", ""},
		{"Minecraft server", share{"TCP", 25565, "", ""}, "Minecraft server", ""},
		{"Minecraft Bedrock", share{"UDP", 19132, "", ""}, "Minecraft Bedrock server", ""},
		{"Valheim", share{"UDP", 2457, "", ""}, "Valheim server", ""},
		{"Factorio", share{"UDP", 34197, "", ""}, "Factorio server", ""},
		{"port 7777", share{"TCP", 7777, "", ""}, "game server (Terraria, ARK, Satisfactory…)", ""},
		{"Mumble", share{"TCP", 64738, "", ""}, "Mumble server", ""},

		// NAT-PMP and PCP: the router wrote the description; only the
		// protocol is known, unless the port says more.
		{"NAT-PMP alone", share{"TCP", 8001, "NAT-PMP 8000 tcp", watcher.OriginNATPMP}, "NAT-PMP client (often an Apple device)", "opened with NAT-PMP"},
		{"PCP alone", share{"UDP", 4500, "PCP 4500 udp", watcher.OriginPCP}, "PCP client (often an Apple device)", "opened with PCP"},
		{"NAT-PMP with a known port", share{"TCP", 51413, "NAT-PMP 51413 tcp", watcher.OriginNATPMP}, "Transmission (BitTorrent)", "port 51413/TCP"},
		// As the lab's real apps open them: qBittorrent over PCP on a port
		// it chose, Syncthing over NAT-PMP to its fixed inside port.
		{"PCP MAP", share{"TCP", 40123, "PCP MAP bba0b0bacf01c551b3a23cbb", watcher.OriginPCP}, "PCP client (often an Apple device)", "opened with PCP"},
		{"PCP PEER", share{"UDP", 40123, "PCP PEER bba0b0bacf01c551b3a23cbb", watcher.OriginPCP}, "PCP client (often an Apple device)", "opened with PCP"},
		{"Syncthing over NAT-PMP", share{"TCP", 22000, "NAT-PMP 41367 tcp", watcher.OriginNATPMP}, "Syncthing", "port 22000/TCP"},
		{"PCP with a known port", share{"UDP", 51413, "PCP MAP bba0b0bacf01c551b3a23cbb", watcher.OriginPCP}, "Transmission (BitTorrent)", "port 51413/UDP"},

		// Unknown stays unknown.
		{"web port", share{"TCP", 8080, "", ""}, "", ""},
		{"SSH is a risk, not an app", share{"TCP", 22, "", ""}, "", ""},
		{"made-up description", share{"TCP", 45678, "My Service", watcher.OriginUPnP}, "", ""},
		{"no protocol", share{"", 32400, "", ""}, "", ""},

		// Descriptions that only look like an app.
		{"Plexiglass", share{"TCP", 1234, "Plexiglass", ""}, "", ""},
		{"not at the start", share{"TCP", 1234, "Not Plex Media Server", ""}, "", ""},
		{"Transmission with a tail", share{"TCP", 1234, "Transmission at 51413; rm -rf", ""}, "", ""},
		{"syncthing without a port", share{"TCP", 1234, "syncthing-", ""}, "", ""},
		{"Teamspeak is not Teams", share{"TCP", 1234, "Teamspeak", ""}, "TeamSpeak", ""},
		{"Teamsters are not Teams", share{"TCP", 1234, "Teamsters", ""}, "", ""},
		{"Zoomer", share{"TCP", 1234, "Zoomer", ""}, "", ""},
		{"Xboxer", share{"TCP", 1234, "Xboxer", ""}, "", ""},
		{"PS2 is not a console we know", share{"TCP", 1234, "PS2", ""}, "", ""},
		{"IC in capitals", share{"UDP", 1234, "IC4502", ""}, "", ""},
		{"look-alike letter", share{"TCP", 1234, "Ρlex Media Server", ""}, "", ""}, // Greek Rho
		{"libminiupnpc with more", share{"TCP", 1234, "libminiupnpc test", ""}, "", ""},
		{"overlong", share{"TCP", 1234, "Plex Media Server " + strings.Repeat("x", 200), ""}, "", ""},
		{"lying description on a known port", share{"TCP", 32400, "Xboxer", ""}, "Plex Media Server", "port 32400/TCP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := watcher.Mapping{
				Protocol:     tt.share.proto,
				ExternalPort: tt.share.port,
				InternalPort: tt.share.port,
				Description:  tt.share.desc,
				Origin:       tt.share.orig,
			}
			if m.Origin == "" {
				m.Origin = watcher.OriginUPnP
			}
			app, ok := AppOf(m)
			if ok != (tt.want != "") || app.Name != tt.want {
				t.Fatalf("AppOf = %+v, %v; want %q", app, ok, tt.want)
			}
			if ok && app.Why == "" {
				t.Errorf("no Why")
			}
			if tt.wantWhy != "" && app.Why != tt.wantWhy {
				t.Errorf("Why = %q, want %q", app.Why, tt.wantWhy)
			}
		})
	}
}

// The inside port decides: a share of outside port 32400 to inside port
// 8080 is whatever listens on 8080.
func TestAppOfUsesInsidePort(t *testing.T) {
	if app, ok := AppOf(watcher.Mapping{Protocol: "TCP", ExternalPort: 32400, InternalPort: 8080}); ok {
		t.Errorf("AppOf = %+v, want unknown", app)
	}
	if app, ok := AppOf(watcher.Mapping{Protocol: "TCP", ExternalPort: 40000, InternalPort: 32400}); !ok || app.Name != "Plex Media Server" {
		t.Errorf("AppOf = %+v, %v; want Plex", app, ok)
	}
}

func TestAppWhyQuotesDescription(t *testing.T) {
	app, ok := AppOf(watcher.Mapping{Protocol: "TCP", InternalPort: 1, Description: "Xbox \x1b[2J" + strings.Repeat("y", 80)})
	if !ok {
		t.Fatal("not recognised")
	}
	if strings.ContainsRune(app.Why, 0x1b) || len([]rune(app.Why)) > 90 {
		t.Errorf("Why = %q", app.Why)
	}
}
