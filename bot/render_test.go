package bot

import (
	"context"
	"fmt"
	"html"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/doorman-upnp/doorman/identify"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

type fakeDevices map[string]identify.Device

func (f fakeDevices) Device(_ context.Context, ip string) identify.Device {
	if d, ok := f[ip]; ok {
		return d
	}
	return identify.Device{IP: ip}
}

func TestRenderAlertNamesDeviceAppAndRisk(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	plex := mapping(32400, "192.168.77.20", "Plex Media Server")
	rdp := mapping(3389, "192.168.77.40", "<i>rdp</i>")
	devs := fakeDevices{
		"192.168.77.20": {IP: "192.168.77.20", Name: "nas.fritz.box", MAC: "00:11:32:aa:bb:cc", Vendor: "Synology"},
		"192.168.77.40": {IP: "192.168.77.40", MAC: "5a:11:22:33:44:55", Randomized: true},
	}
	tests := []struct {
		name string
		m    watcher.Mapping
		want []string
		not  []string
	}{
		{"known device and app", plex, []string{"<b>nas.fritz.box</b> (192.168.77.20) · Synology", "<code>00:11:32:aa:bb:cc</code>", "<b>Plex Media Server</b> on <b>nas.fritz.box</b>", "app told by its description", "First seen: 11:00, 21 Nov 2026", "last seen: 11:59"}, []string{"Risky"}},
		{"risky, private MAC", rdp, []string{"<b>192.168.77.40</b> · private MAC", "⚠️ <b>Risky</b>: Remote Desktop", "&lt;i&gt;rdp&lt;/i&gt;"}, []string{"app told", "<i>rdp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			share := storage.Share{Mapping: tt.m, FirstSeen: now.Add(-time.Hour), LastSeen: now.Add(-time.Minute)}
			a := storage.Alert{ID: 1, Kind: storage.AlertNew, Share: share, State: storage.AlertPending, CreatedAt: now}
			v := view{loc: time.UTC, now: now, devices: lookupDevices(context.Background(), devs, []string{tt.m.InternalClient}),
				shares: map[string]storage.Share{storage.ShareKey(tt.m.Key()): share}}
			text, kb := renderService([]storage.Alert{a}, v)
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("alert lacks %q:\n%s", w, text)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(text, w) {
					t.Errorf("alert has %q:\n%s", w, text)
				}
			}
			if len(kb) != 3 || kb[1][0].Data != "d:1" || kb[2][0].Data != "x:1" {
				t.Errorf("keyboard = %+v", kb)
			}
			if _, err := renderCheck(text); err != nil {
				t.Errorf("Telegram would reject the HTML: %v", err)
			}
		})
	}
}

// renderCheck is a crude balance check of the tags doorman writes.
func renderCheck(s string) (int, error) {
	depth := 0
	for _, tag := range []string{"b", "i", "code"} {
		if strings.Count(s, "<"+tag+">") != strings.Count(s, "</"+tag+">") {
			return 0, &tagError{tag}
		}
		depth += strings.Count(s, "<"+tag+">")
	}
	return depth, nil
}

type tagError struct{ tag string }

func (e *tagError) Error() string { return "unbalanced <" + e.tag + ">" }

func TestRenderHostileDescriptions(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		desc string
	}{
		{"10 KB", strings.Repeat("A very long description. ", 420)},
		{"invalid UTF-8", "caf\xe9 \xff\xfe<b>"},
		{"control characters", "line one\nline two\r\x1b[31mred\x07\x00"},
		{"markup and links", `<a href="https://evil.example/">update</a> <tg-spoiler>x</tg-spoiler> &amp; &#60;`},
		{"bidi override", "\u202egnp.exe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mapping(8080, "192.168.77.21", tt.desc)
			a := storage.Alert{ID: 7, Kind: storage.AlertNew, Share: storage.Share{Mapping: m, FirstSeen: now}, State: storage.AlertPending, CreatedAt: now}
			text, _ := renderService([]storage.Alert{a}, view{loc: time.UTC, now: now})
			batch, _ := renderBatch([]storage.Alert{a, a}, view{loc: time.UTC, now: now})
			for _, s := range []string{text, batch} {
				if n := len([]rune(s)); n > MaxMessageLength {
					t.Errorf("%d characters", n)
				}
				if !utf8.ValidString(s) {
					t.Error("invalid UTF-8 reaches Telegram")
				}
				for _, bad := range []string{"<a ", "<tg-spoiler", "\x1b", "\x00", "\x07", "<b>free", "\u202e"} {
					if strings.Contains(s, bad) {
						t.Errorf("%q reaches Telegram:\n%s", bad, s)
					}
				}
				if _, err := renderCheck(s); err != nil {
					t.Error(err)
				}
			}
			desc := text[strings.Index(text, "Description: ")+len("Description: "):]
			desc = strings.Trim(desc[:strings.IndexByte(desc, '\n')], "“”")
			if n := len([]rune(html.UnescapeString(desc))); n > 200 {
				t.Errorf("description shown with %d characters, want it cut to 200", n)
			}
		})
	}
}

func TestLongBatchStaysUnderTheLimit(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var alerts []storage.Alert
	devs := fakeDevices{}
	for i := range 15 {
		ip := fmt.Sprintf("192.168.77.%d", 100+i)
		devs[ip] = identify.Device{IP: ip, Name: strings.Repeat("very-long-hostname-", 4) + "lan", Vendor: "Some Very Long Vendor Name Inc"}
		m := mapping(uint16(40000+i), ip, strings.Repeat("Ω description chosen by the device ", 10))
		m.RemoteHost = "203.0.113.200"
		alerts = append(alerts, storage.Alert{ID: uint64(i + 1), Batch: 1, Kind: storage.AlertExisting, Share: storage.Share{Mapping: m, FirstSeen: now}, State: storage.AlertPending, Note: storage.Note{Kind: storage.NoteSeeBelow}})
	}
	var ips []string
	for ip := range devs {
		ips = append(ips, ip)
	}
	text, kb := renderBatch(alerts, view{loc: time.UTC, now: now, devices: lookupDevices(context.Background(), devs, ips)})
	if n := len(text); n > MaxMessageLength {
		t.Errorf("batch message has %d bytes", n)
	}
	if len(kb) != 15 {
		t.Errorf("%d button rows, want one per share", len(kb))
	}
	if _, err := renderCheck(text); err != nil {
		t.Error(err)
	}
}

// A message whose owning share went to another device still asks about the
// shares it holds that are pending: its buttons answer for one of them.
func TestRenderAsksWhileTheOwnerNoLongerDoes(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := watcher.Mapping{Router: testRouter, Service: testSvc, Protocol: "TCP", ExternalPort: 51413, InternalClient: "192.168.77.21", InternalPort: 51413, Description: "Transmission at 51413", Enabled: true}
	u := m
	u.Protocol = "UDP"
	for _, busy := range []bool{false, true} {
		owner := storage.Alert{ID: 1, Batch: 1, Kind: storage.AlertNew, Busy: busy, Share: storage.Share{Mapping: m, FirstSeen: now}, State: storage.AlertSuperseded, Note: storage.Note{Kind: storage.NoteChanged}}
		joined := storage.Alert{ID: 2, Batch: 1, Kind: storage.AlertNew, Share: storage.Share{Mapping: u, FirstSeen: now}, State: storage.AlertPending}
		text, kb := renderMessage([]storage.Alert{owner, joined}, view{loc: time.UTC, now: now})
		if len(kb) == 0 {
			t.Errorf("busy %v: no buttons while share UDP 51413 is still asked about:\n%s", busy, text)
			continue
		}
		for _, row := range kb {
			for _, b := range row {
				if _, id, ok := parseCallbackData(b.Data); !ok || id != joined.ID {
					t.Errorf("busy %v: button %q answers %q, want alert %d", busy, b.Text, b.Data, joined.ID)
				}
			}
		}
	}
}
