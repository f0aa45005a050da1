package bot

import (
	"context"
	"fmt"
	"html"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/identify"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// MaxMessageLength is Telegram's limit on a message's text after entity
// parsing; doorman keeps the HTML source under it, which is stricter.
const MaxMessageLength = 4096

// Callback data is "<verb>:<id>". It stays far below Telegram's 64 bytes and
// carries nothing but an ID into the database, so a forged press can at most
// name an alert or rule that exists, and is then checked like any other.
const (
	verbAllow       = "a"
	verbAllowDevice = "d"
	verbBlock       = "b"
	verbForget      = "f"
)

func callbackData(verb string, id uint64) string {
	return verb + ":" + strconv.FormatUint(id, 10)
}

// parseCallbackData splits callback data; ok is false for anything doorman
// did not write.
func parseCallbackData(data string) (verb string, id uint64, ok bool) {
	verb, rest, found := strings.Cut(data, ":")
	if !found || len(data) > 64 {
		return "", 0, false
	}
	switch verb {
	case verbAllow, verbAllowDevice, verbBlock, verbBlockDevice, verbForget:
	default:
		return "", 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || id == 0 || strconv.FormatUint(id, 10) != rest {
		return "", 0, false
	}
	return verb, id, true
}

// esc escapes router- and device-supplied text for Telegram's HTML mode. A
// device chooses its own description, so it must not be able to add markup
// or links; control characters are dropped and long text is cut.
func esc(s string, maxRunes int) string {
	s = strings.Map(func(r rune) rune {
		// Bidi controls can make "exe.gnp" read as "png.exe".
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, s)
	return html.EscapeString(truncate(s, maxRunes))
}

func originName(o watcher.Origin) string {
	switch o {
	case watcher.OriginNATPMP:
		return "NAT-PMP"
	case watcher.OriginPCP:
		return "PCP"
	}
	return "UPnP"
}

// lease says how long a lease has left, for people.
func (w Words) lease(d time.Duration) string {
	if d <= 0 {
		return w.T("LeasePermanent")
	}
	return w.T("LeaseLeft", "Left", w.duration(d))
}

// duration is a short span for people: "45s", "10m", "1h30m", "3d" in
// English.
func (w Words) duration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return w.N("DurSeconds", int(d.Seconds()))
	case d < time.Hour:
		return w.N("DurMinutes", int(d.Minutes()))
	case d < 48*time.Hour:
		h := int(d.Hours())
		if m := int(d.Minutes()) % 60; m != 0 {
			return w.N("DurHoursMinutes", h, "Minutes", fmt.Sprintf("%02d", m))
		}
		return w.N("DurHours", h)
	}
	return w.N("DurDays", int(d.Hours()/24))
}

// formatDuration is duration in English, for what is not for the chat.
func formatDuration(d time.Duration) string { return Words{}.duration(d) }

// when is a time for people, in the chat's language; the catalog holds the
// layout.
func (w Words) when(t time.Time, loc *time.Location) string {
	return t.In(loc).Format(w.T("TimeLayout"))
}

// view is what rendering knows besides the alerts: who the devices are and
// the shares as they are now (for last seen and lease left).
type view struct {
	loc     *time.Location
	now     time.Time
	devices map[string]identify.Device // by IP; missing means unknown
	shares  map[string]storage.Share   // by share key
	words   Words                      // the chat's language
}

func (v view) device(ip string) identify.Device {
	if d, ok := v.devices[ip]; ok {
		return d
	}
	return identify.Device{IP: ip}
}

// deviceName names a device for people: its DNS name, else its address;
// the vendor follows when known.
func (w Words) deviceName(d identify.Device) string {
	name := "<b>" + esc(d.IP, 64) + "</b>"
	if d.Name != "" {
		name = "<b>" + esc(d.Name, 64) + "</b> (" + esc(d.IP, 64) + ")"
	}
	switch {
	case d.Vendor != "":
		name += " · " + esc(d.Vendor, 40)
	case d.Randomized:
		name += w.T("PrivateMAC")
	}
	return name
}

// riskWhy words why a port is risky, in the chat's language; the catalog
// holds one text per risk, named after the service.
func (w Words) riskWhy(r approvals.Risk) string {
	return r.Service + ": " + w.T(riskTextID(r))
}

func riskTextID(r approvals.Risk) string {
	return "Risk" + strings.Map(func(c rune) rune {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			return c
		}
		return -1
	}, r.Service)
}

// appWhy says what an app was recognised by, in the chat's language.
func (w Words) appWhy(a identify.App) string {
	switch a.Basis {
	case identify.ByDescription:
		return w.T("AppByDescription", "Detail", a.Detail)
	case identify.ByPort:
		return w.T("AppByPort", "Detail", a.Detail)
	case identify.ByOrigin:
		return w.T("AppByOrigin", "Detail", a.Detail)
	}
	return a.Why
}

// riskLine warns about a port attackers scan for, "" for another port.
func (w Words) riskLine(m watcher.Mapping) string {
	r, ok := approvals.RiskOf(m.InternalPort)
	if !ok {
		return ""
	}
	return w.T("RiskLine", "Why", esc(w.riskWhy(r), 200))
}

// shareLine is the compact one-line form of a mapping used in lists.
func shareLine(m watcher.Mapping, v view) string {
	w := v.words
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %d → %d", w.deviceName(v.device(m.InternalClient)), m.Protocol, m.ExternalPort, m.InternalPort)
	if m.RemoteHost != "" {
		b.WriteString(w.T("LineOnlyFrom", "Host", esc(m.RemoteHost, 64)))
	}
	if m.Description != "" {
		fmt.Fprintf(&b, " · “%s”", esc(m.Description, 80))
	}
	if app, ok := identify.AppOf(m); ok && app.Basis != identify.ByOrigin {
		fmt.Fprintf(&b, " · %s", esc(app.Name, 40))
	}
	fmt.Fprintf(&b, " · %s · %s", originName(m.Origin), w.lease(m.LeaseDuration))
	if _, risky := approvals.RiskOf(m.InternalPort); risky {
		b.WriteString(w.T("LineRisky"))
	}
	return b.String()
}

func stateLine(a storage.Alert, v view) string {
	w := v.words
	var s string
	switch a.State {
	case storage.AlertAllowed:
		s = w.T("StateAllowed", "Name", esc(a.DecidedBy.Name, 64), "When", w.when(a.DecidedAt, v.loc))
		if note := v.words.allowedNote(a.Note); note != "" {
			s += " " + html.EscapeString(note)
		}
	case storage.AlertBlocked:
		s = w.T("StateBlocked", "Name", esc(a.DecidedBy.Name, 64), "When", w.when(a.DecidedAt, v.loc))
		if note := v.words.blockedNote(a.Note); note != "" {
			s += " " + html.EscapeString(note)
		}
	case storage.AlertSuperseded:
		s = "↪️ " + html.EscapeString(v.words.supersededNote(a.Note))
	default:
		s = w.T("StatePending")
		if note := v.words.pendingNote(a.Note); note != "" {
			s = "⚠️ " + note
		}
	}
	return s
}

// renderBatch renders the message that asks about several shares that were
// open before doorman started watching, one numbered line each.
func renderBatch(alerts []storage.Alert, v view) (string, Keyboard) {
	w := v.words
	var b strings.Builder
	router := ""
	if len(alerts) > 0 {
		router = watcher.RouterHost(alerts[0].Share.Mapping.Router)
	}
	b.WriteString(w.T("BatchTitle", "Router", esc(router, 64)))
	var kb Keyboard
	pending, cut := 0, 0
	for i, a := range alerts {
		n := i + 1
		// Fifteen lines of device-chosen text can pass Telegram's limit;
		// long lines get shorter, and past the budget they are left to
		// /list, while every share keeps its buttons.
		line := fmt.Sprintf("\n%d. %s", n, shareLine(a.Share.Mapping, v))
		if b.Len()+len(line) > batchBudget {
			m := a.Share.Mapping
			line = fmt.Sprintf("\n%d. %s %s %d → %d", n, esc(m.InternalClient, 40), m.Protocol, m.ExternalPort, m.InternalPort)
		}
		if b.Len()+len(line) > batchBudget {
			cut++
		} else {
			b.WriteString(line)
		}
		switch a.State {
		case storage.AlertAllowed:
			if b.Len() < batchBudget {
				b.WriteString(w.T("BatchAllowed", "Name", esc(a.DecidedBy.Name, 40), "When", w.when(a.DecidedAt, v.loc)))
			}
		case storage.AlertBlocked:
			if b.Len() < batchBudget {
				b.WriteString(w.T("BatchBlocked", "Name", esc(a.DecidedBy.Name, 40), "When", w.when(a.DecidedAt, v.loc)))
			}
		case storage.AlertSuperseded:
			if b.Len() < batchBudget {
				b.WriteString("\n    ↪️ " + html.EscapeString(truncate(v.words.supersededNote(a.Note), 100)))
			}
		case storage.AlertPending:
			pending++
			if note := v.words.pendingNote(a.Note); note != "" && b.Len() < batchBudget {
				b.WriteString("\n    ⚠️ " + note)
			}
			kb = append(kb, []Button{
				{Text: w.T("ButtonAllowN", "N", n), Data: callbackData(verbAllow, a.ID)},
				{Text: w.T("ButtonBlockN", "N", n), Data: callbackData(verbBlock, a.ID)},
			})
		}
	}
	if cut > 0 {
		b.WriteString(w.T("BatchMore", "N", cut))
	}
	if pending > 0 {
		b.WriteString(w.T("BatchQuestion"))
	}
	return b.String(), kb
}

// batchBudget keeps a batch message's HTML, and so its text, under
// Telegram's 4096 characters with room for the closing lines.
const batchBudget = 3700

// renderMessage renders the message owned by the first alert of alerts.
func renderMessage(alerts []storage.Alert, v view) (string, Keyboard) {
	switch owner := alerts[0]; {
	case owner.Kind == storage.AlertExisting:
		return renderBatch(alerts, v)
	case owner.Busy:
		return renderBusy(askingFirst(alerts), v)
	}
	return renderService(askingFirst(alerts), v)
}

// askingFirst puts a pending alert first when the owner of the message no
// longer asks (its share went to another device) but others of the
// message do: the message leads with, and its buttons answer for, what it
// still asks. approvals.Engine.Decide answers for the whole message.
func askingFirst(alerts []storage.Alert) []storage.Alert {
	if alerts[0].State == storage.AlertPending {
		return alerts
	}
	i := slices.IndexFunc(alerts, func(a storage.Alert) bool { return a.State == storage.AlertPending })
	if i < 0 {
		return alerts
	}
	out := append([]storage.Alert{alerts[i]}, alerts[:i]...)
	return append(out, alerts[i+1:]...)
}

// splitMessages cuts lines into messages under Telegram's length limit,
// never inside a line.
func splitMessages(header string, lines []string) []string {
	var out []string
	cur := header
	for _, l := range lines {
		if len(cur)+len(l)+1 > MaxMessageLength-100 && cur != header {
			out = append(out, cur)
			cur = header + " (continued)"
		}
		cur += "\n" + l
	}
	return append(out, cur)
}

// Devices names the devices behind shares; *identify.Identifier is one.
type Devices interface {
	Device(ctx context.Context, ip string) identify.Device
}

// deviceBudget bounds how long a message waits for device names: an alert
// that comes late is worse than one that names the device by its address.
// A home router answers reverse lookups in milliseconds; a lookup that
// comes later still lands in the cache for the next message.
const deviceBudget = 400 * time.Millisecond

// lookupDevices identifies the devices at ips side by side, within
// deviceBudget.
func lookupDevices(ctx context.Context, devs Devices, ips []string) map[string]identify.Device {
	out := map[string]identify.Device{}
	if devs == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, deviceBudget)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	seen := map[string]bool{}
	for _, ip := range ips {
		if seen[ip] {
			continue
		}
		seen[ip] = true
		wg.Go(func() {
			d := devs.Device(ctx, ip)
			mu.Lock()
			out[ip] = d
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// makeView gathers what rendering the alerts needs.
func makeView(ctx context.Context, db *storage.DB, devs Devices, loc *time.Location, alerts []storage.Alert) view {
	v := view{loc: loc, now: time.Now(), shares: map[string]storage.Share{}}
	var ips []string
	db.View(func(tx *storage.Tx) error {
		for _, a := range alerts {
			ips = append(ips, a.Share.Mapping.InternalClient)
			key := storage.ShareKey(a.Share.Mapping.Key())
			if s, ok, err := tx.Share(key); err == nil && ok {
				v.shares[key] = s
			}
		}
		return nil
	})
	v.devices = lookupDevices(ctx, devs, ips)
	return v
}
