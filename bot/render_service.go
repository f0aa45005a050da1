package bot

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/identify"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// verbBlockDevice is "Block everything from this device".
const verbBlockDevice = "x"

// busyListed caps the shares a busy device's message lists; /list has all.
const busyListed = 10

// namedApp names the app behind a mapping where its description or port
// tells; a guess from the protocol alone names none.
func namedApp(m watcher.Mapping) (identify.App, bool) {
	app, ok := identify.AppOf(m)
	if !ok || strings.HasPrefix(app.Why, "opened with") {
		return identify.App{}, false
	}
	return app, true
}

// openLine says what one share opens, in a person's words: "TCP 32400 open
// to the internet", then where it leads when that is another port, the
// protocol that opened it and its lease.
func openLine(m watcher.Mapping, lease time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s <b>%d</b> open to the internet", m.Protocol, m.ExternalPort)
	if m.RemoteHost != "" {
		fmt.Fprintf(&b, " (only from %s)", esc(m.RemoteHost, 64))
	}
	if m.ExternalPort != m.InternalPort {
		fmt.Fprintf(&b, ", to port %d of the device", m.InternalPort)
	}
	fmt.Fprintf(&b, " · %s · %s", originName(m.Origin), FormatLease(lease))
	if !m.Enabled {
		b.WriteString(" · disabled")
	}
	return b.String()
}

// renderService renders the question about one service: the shares one
// device opened for one inside port. It leads with who opened what; router
// details come after.
func renderService(alerts []storage.Alert, v view) (string, Keyboard) {
	owner := alerts[0]
	m := owner.Share.Mapping
	dev := v.device(m.InternalClient)
	var b strings.Builder
	changed := owner.Kind == storage.AlertChanged
	for _, a := range alerts {
		changed = changed || a.Previous != nil
	}
	if changed {
		b.WriteString("🔁 <b>Port share changed</b>: ")
	} else {
		b.WriteString("🚪 <b>New port share</b>: ")
	}
	app, named := namedApp(m)
	for _, a := range alerts[1:] {
		if !named {
			app, named = namedApp(a.Share.Mapping)
		}
	}
	if named {
		fmt.Fprintf(&b, "<b>%s</b> on ", esc(app.Name, 60))
	}
	b.WriteString(deviceName(dev) + "\n")
	var descs []string
	firstSeen, lastSeen := owner.Share.FirstSeen, owner.Share.LastSeen
	for _, a := range alerts {
		sm := a.Share.Mapping
		lease := sm.LeaseDuration
		if cur, ok := v.shares[storage.ShareKey(sm.Key())]; ok && approvals.SameService(cur.Mapping, sm) {
			lease = cur.Mapping.LeaseDuration
			firstSeen, lastSeen = minTime(firstSeen, cur.FirstSeen), maxTime(lastSeen, cur.LastSeen)
		}
		fmt.Fprintf(&b, "• %s\n", openLine(sm, lease))
		// A description that only repeats the app says nothing more.
		if a, ok := identify.AppOf(sm); sm.Description != "" && !(ok && strings.HasPrefix(a.Why, "description")) && !slices.Contains(descs, sm.Description) {
			descs = append(descs, sm.Description)
		}
	}
	if r := riskLine(m); r != "" {
		b.WriteString(r + "\n")
	}
	fmt.Fprintf(&b, "\nRouter %s (%s)", esc(watcher.RouterHost(m.Router), 64), esc(watcher.ShortServiceType(m.Service), 40))
	if named {
		fmt.Fprintf(&b, " · app told by its %s", esc(app.Why, 80))
	}
	for _, d := range descs {
		fmt.Fprintf(&b, "\nDescription: “%s”", esc(d, 200))
	}
	if dev.MAC != "" {
		fmt.Fprintf(&b, "\nMAC: <code>%s</code>", esc(dev.MAC, 17))
	}
	for _, a := range alerts {
		if p := a.Previous; p != nil {
			fmt.Fprintf(&b, "\nBefore: %s %d → %s:%d “%s”", p.Protocol, p.ExternalPort, esc(p.InternalClient, 64), p.InternalPort, esc(p.Description, 80))
		}
	}
	fmt.Fprintf(&b, "\nFirst seen: %s", formatWhen(firstSeen, v.loc))
	if !lastSeen.IsZero() && lastSeen.Sub(firstSeen) >= time.Minute {
		fmt.Fprintf(&b, " · last seen: %s", formatWhen(lastSeen, v.loc))
	}
	b.WriteString("\n\n")
	b.WriteString(stateLine(owner, v.loc))
	if owner.State != storage.AlertPending {
		return b.String(), nil
	}
	return b.String(), Keyboard{
		{
			{Text: "✅ Allow", Data: callbackData(verbAllow, owner.ID)},
			{Text: "⛔ Block", Data: callbackData(verbBlock, owner.ID)},
		},
		{{Text: "✅ Allow everything from this device", Data: callbackData(verbAllowDevice, owner.ID)}},
		{{Text: "⛔ Block everything from this device", Data: callbackData(verbBlockDevice, owner.ID)}},
	}
}

// renderBusy renders the one question about a device that opened more
// shares than a device normally does, with how to take away its permission
// on the common routers.
func renderBusy(alerts []storage.Alert, v view) (string, Keyboard) {
	owner := alerts[0]
	m := owner.Share.Mapping
	dev := v.device(m.InternalClient)
	var b strings.Builder
	fmt.Fprintf(&b, "🚨 <b>Unusually active device</b>: %s opened %d port shares within moments", deviceName(dev), len(alerts))
	fmt.Fprintf(&b, " on router %s.\n\n", esc(watcher.RouterHost(m.Router), 64))
	b.WriteString("A device that opens this many doors to the internet for no reason may be infected. <b>Check it for malware</b>, and take away its permission to open ports:\n")
	b.WriteString("• <b>FRITZ!Box</b>: Internet → Permit Access → Port Sharing → the device → uncheck “Permit independent port sharing for this device” (Internet → Freigaben → Portfreigaben → Gerät → „Selbstständige Portfreigaben für dieses Gerät erlauben“ abwählen).\n")
	b.WriteString("• <b>OpenWrt</b>: deny the device in miniupnpd's ACL (Network → UPnP, an ACL entry “deny” for its address), or turn UPnP off.\n")
	if dev.MAC != "" {
		fmt.Fprintf(&b, "MAC: <code>%s</code>\n", esc(dev.MAC, 17))
	}
	b.WriteString("\nShares:")
	for i, a := range alerts {
		if i == busyListed {
			fmt.Fprintf(&b, "\n…and %d more; /list shows them all.", len(alerts)-busyListed)
			break
		}
		sm := a.Share.Mapping
		fmt.Fprintf(&b, "\n• %s %d → %d", sm.Protocol, sm.ExternalPort, sm.InternalPort)
		if sm.Description != "" {
			fmt.Fprintf(&b, " “%s”", esc(sm.Description, 60))
		}
		fmt.Fprintf(&b, " · %s", originName(sm.Origin))
	}
	b.WriteString("\n\n")
	switch owner.State {
	case storage.AlertPending:
		b.WriteString("Block everything from this device, or allow it?")
		if note := pendingNote(owner.Note); note != "" {
			b.WriteString("\n⚠️ " + note)
		}
	default:
		b.WriteString(stateLine(owner, v.loc))
	}
	if owner.State != storage.AlertPending {
		return b.String(), nil
	}
	return b.String(), Keyboard{
		{{Text: "⛔ Block everything from this device", Data: callbackData(verbBlockDevice, owner.ID)}},
		{{Text: "✅ Allow everything from this device", Data: callbackData(verbAllowDevice, owner.ID)}},
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// blockedNote words the note of a blocked alert, as plain text.
func blockedNote(n storage.Note) string {
	if n.Kind == storage.NoteBlockedDevice {
		return "Everything this device opens is closed, now and whenever it opens more."
	}
	return ""
}
