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
	if !ok || app.Basis == identify.ByOrigin {
		return identify.App{}, false
	}
	return app, true
}

// openLine says what one share opens, in a person's words: "TCP 32400 open
// to the internet", then where it leads when that is another port, the
// protocol that opened it and its lease.
func openLine(w Words, m watcher.Mapping, lease time.Duration) string {
	var b strings.Builder
	b.WriteString(w.T("ShareOpen", "Protocol", m.Protocol, "Port", m.ExternalPort))
	if m.RemoteHost != "" {
		b.WriteString(w.T("ShareOnlyFrom", "Host", esc(m.RemoteHost, 64)))
	}
	if m.ExternalPort != m.InternalPort {
		b.WriteString(w.T("ShareToPort", "Port", m.InternalPort))
	}
	fmt.Fprintf(&b, " · %s · %s", originName(m.Origin), w.lease(lease))
	if !m.Enabled {
		b.WriteString(w.T("ShareDisabled"))
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
	w := v.words
	var b strings.Builder
	changed := owner.Kind == storage.AlertChanged
	for _, a := range alerts {
		changed = changed || a.Previous != nil
	}
	if changed {
		b.WriteString(w.T("ServiceChanged"))
	} else {
		b.WriteString(w.T("ServiceNew"))
	}
	app, named := namedApp(m)
	for _, a := range alerts[1:] {
		if !named {
			app, named = namedApp(a.Share.Mapping)
		}
	}
	if named {
		b.WriteString(w.T("ServiceApp", "App", esc(app.Name, 60)))
	}
	b.WriteString(w.deviceName(dev) + "\n")
	var descs []string
	firstSeen, lastSeen := owner.Share.FirstSeen, owner.Share.LastSeen
	for _, a := range alerts {
		sm := a.Share.Mapping
		lease := sm.LeaseDuration
		if cur, ok := v.shares[storage.ShareKey(sm.Key())]; ok && approvals.SameService(cur.Mapping, sm) {
			lease = cur.Mapping.LeaseDuration
			firstSeen, lastSeen = minTime(firstSeen, cur.FirstSeen), maxTime(lastSeen, cur.LastSeen)
		}
		fmt.Fprintf(&b, "• %s\n", openLine(w, sm, lease))
		// A description that only repeats the app says nothing more.
		if a, ok := identify.AppOf(sm); sm.Description != "" && !(ok && a.Basis == identify.ByDescription) && !slices.Contains(descs, sm.Description) {
			descs = append(descs, sm.Description)
		}
	}
	if r := w.riskLine(m); r != "" {
		b.WriteString(r + "\n")
	}
	b.WriteString("\n" + w.T("ServiceRouter", "Router", esc(watcher.RouterHost(m.Router), 64), "Service", esc(watcher.ShortServiceType(m.Service), 40)))
	if named {
		b.WriteString(w.T("ServiceAppWhy", "Why", esc(w.appWhy(app), 80)))
	}
	for _, d := range descs {
		b.WriteString("\n" + w.T("ServiceDescription", "Description", esc(d, 200)))
	}
	if dev.MAC != "" {
		b.WriteString("\n" + w.T("ServiceMAC", "MAC", esc(dev.MAC, 17)))
	}
	for _, a := range alerts {
		if p := a.Previous; p != nil {
			b.WriteString("\n" + w.T("ServiceBefore", "Protocol", p.Protocol, "External", p.ExternalPort, "Client", esc(p.InternalClient, 64), "Internal", p.InternalPort, "Description", esc(p.Description, 80)))
		}
	}
	b.WriteString("\n" + w.T("ServiceFirstSeen", "When", w.when(firstSeen, v.loc)))
	if !lastSeen.IsZero() && lastSeen.Sub(firstSeen) >= time.Minute {
		b.WriteString(w.T("ServiceLastSeen", "When", w.when(lastSeen, v.loc)))
	}
	b.WriteString("\n\n")
	b.WriteString(stateLine(owner, v))
	if owner.State != storage.AlertPending {
		return b.String(), nil
	}
	return b.String(), Keyboard{
		{
			{Text: w.T("ButtonAllow"), Data: callbackData(verbAllow, owner.ID)},
			{Text: w.T("ButtonBlock"), Data: callbackData(verbBlock, owner.ID)},
		},
		{{Text: w.T("ButtonAllowDevice"), Data: callbackData(verbAllowDevice, owner.ID)}},
		{{Text: w.T("ButtonBlockDevice"), Data: callbackData(verbBlockDevice, owner.ID)}},
	}
}

// renderBusy renders the one question about a device that opened more
// shares than a device normally does, with how to take away its permission
// on the common routers.
func renderBusy(alerts []storage.Alert, v view) (string, Keyboard) {
	owner := alerts[0]
	m := owner.Share.Mapping
	dev := v.device(m.InternalClient)
	w := v.words
	var b strings.Builder
	b.WriteString(w.N("BusyTitle", len(alerts), "Device", w.deviceName(dev), "Router", esc(watcher.RouterHost(m.Router), 64)))
	b.WriteString("\n\n" + w.T("BusyAdvice"))
	if dev.MAC != "" {
		b.WriteString("\n" + w.T("ServiceMAC", "MAC", esc(dev.MAC, 17)))
	}
	b.WriteString("\n\n" + w.T("BusyShares"))
	for i, a := range alerts {
		if i == busyListed {
			b.WriteString("\n" + w.N("BusyMore", len(alerts)-busyListed))
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
	if owner.State != storage.AlertPending {
		b.WriteString(stateLine(owner, v))
		return b.String(), nil
	}
	b.WriteString(w.T("BusyQuestion"))
	if note := w.pendingNote(owner.Note); note != "" {
		b.WriteString("\n⚠️ " + note)
	}
	return b.String(), Keyboard{
		{{Text: w.T("ButtonBlockDevice"), Data: callbackData(verbBlockDevice, owner.ID)}},
		{{Text: w.T("ButtonAllowDevice"), Data: callbackData(verbAllowDevice, owner.ID)}},
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
func (w Words) blockedNote(n storage.Note) string {
	if n.Kind == storage.NoteBlockedDevice {
		return w.T("BlockedDeviceNote")
	}
	return ""
}
