package bot

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/internal/chatpng"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

var update = flag.Bool("update", false, "rewrite docs/alert.png and docs/alert.de.png from the alert as doorman renders it")

// alertPNGs are the README's pictures of an alert, one per language.
var alertPNGs = map[Lang]string{English: "../docs/alert.png", German: "../docs/alert.de.png"}

// exampleAlert is the alert the README shows: Plex on a Synology NAS behind
// a FRITZ!Box, as renderService writes it in lang.
func exampleAlert(t *testing.T, lang Lang) chatpng.Message {
	t.Helper()
	c, err := NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 9, 16, 0, 0, time.UTC)
	m := watcher.Mapping{
		Router: "http://192.168.178.1:49000/igddesc.xml", Service: "urn:schemas-upnp-org:service:WANIPConnection:1",
		Protocol: "TCP", ExternalPort: 32400, InternalClient: "192.168.178.20", InternalPort: 32400,
		Enabled: true, Description: "Plex Media Server", LeaseDuration: 2 * time.Hour,
	}
	m.Origin = watcher.OriginFromDescription(m.Description)
	share := storage.Share{Mapping: m, FirstSeen: now.Add(-2 * time.Minute), LastSeen: now}
	devs := fakeDevices{"192.168.178.20": {IP: "192.168.178.20", Name: "nas.fritz.box", MAC: "00:11:32:5e:8a:41", Vendor: "Synology"}}
	a := storage.Alert{ID: 1, Kind: storage.AlertNew, Share: share, State: storage.AlertPending, CreatedAt: now}
	v := view{loc: time.UTC, now: now, devices: lookupDevices(context.Background(), devs, []string{m.InternalClient}),
		shares: map[string]storage.Share{storage.ShareKey(m.Key()): share}, words: c.In(lang)}
	text, kb := renderService([]storage.Alert{a}, v)
	msg := chatpng.Message{HTML: text, Sender: "Doorman", Time: "09:16"}
	for _, row := range kb {
		var texts []string
		for _, b := range row {
			texts = append(texts, b.Text)
		}
		msg.Keyboard = append(msg.Keyboard, texts)
	}
	return msg
}

// TestAlertPNG keeps the README's pictures of an alert (docs/alert.png and
// its German twin docs/alert.de.png) drawn from the alert doorman really
// sends: change the alert, and this fails until the pictures are redrawn
// with -update.
func TestAlertPNG(t *testing.T) {
	for lang, path := range alertPNGs {
		t.Run(string(lang), func(t *testing.T) {
			img, err := chatpng.Draw(exampleAlert(t, lang), chatpng.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				data, err := chatpng.Encode(img)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s (%d×%d, %d bytes)", path, img.Bounds().Dx(), img.Bounds().Dy(), len(data))
				return
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v: run go test ./bot -run TestAlertPNG -update", err)
			}
			old, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v: run go test ./bot -run TestAlertPNG -update", path, err)
			}
			if why := differs(old, img); why != "" {
				t.Fatalf("%s is out of date (%s): run go test ./bot -run TestAlertPNG -update", path, why)
			}
		})
	}
}

// differs compares two pictures pixel by pixel, forgiving a few levels of a
// colour channel: the rasterizer's floating-point paths may round a little
// differently on another CPU architecture, and PNG encoders differ between
// Go versions, so the file's bytes are not compared.
func differs(a, b image.Image) string {
	if a.Bounds() != b.Bounds() {
		return "size " + a.Bounds().Size().String() + ", want " + b.Bounds().Size().String()
	}
	const tolerance = 4 << 8
	bad := 0
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, a1 := a.At(x, y).RGBA()
			r2, g2, b2, a2 := b.At(x, y).RGBA()
			for _, d := range [][2]uint32{{r1, r2}, {g1, g2}, {b1, b2}, {a1, a2}} {
				if d[0] > d[1]+tolerance || d[1] > d[0]+tolerance {
					bad++
					break
				}
			}
		}
	}
	if bad > 0 {
		return fmt.Sprintf("%d pixels differ", bad)
	}
	return ""
}

// The pictures must show what the alert says: every line of it, both
// buttons, and no character drawn as a box.
func TestAlertPNGShowsTheWholeAlert(t *testing.T) {
	tests := map[Lang][]string{
		English: {"nas.fritz.box", "Synology", "Plex Media Server", "32400", "First seen", "open to the internet"},
		German:  {"nas.fritz.box", "Synology", "Plex Media Server", "32400", "Zuerst gesehen", "Erlauben", "Sperren", "Gerät"},
	}
	for lang, wants := range tests {
		msg := exampleAlert(t, lang)
		page := msg.HTML
		for _, row := range msg.Keyboard {
			page += "\n" + strings.Join(row, " ")
		}
		for _, want := range wants {
			if !strings.Contains(page, want) {
				t.Errorf("the %s example alert lacks %q:\n%s", lang, want, page)
			}
		}
		if len(msg.Keyboard) != 3 || len(msg.Keyboard[0]) != 2 {
			t.Errorf("%s keyboard = %q, want Allow and Block, then Allow everything and Block everything", lang, msg.Keyboard)
		}
		missing, err := chatpng.Missing(page)
		if err != nil {
			t.Fatal(err)
		}
		if len(missing) > 0 {
			t.Errorf("the Go fonts lack %q of the %s alert, which would be left out of the picture", missing, lang)
		}
	}
}
