package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/lab"
)

// BenchmarkLabAlert measures, against the lab router and the fake Telegram,
// the time from a device adding a mapping (upnpc returned) to the alert
// reaching Telegram, and from a Block press to the alert saying the share is
// closed (doorman edits only after the router confirmed it gone). It is run
// by deploy/lab/bench-alert.sh, which prints the figures; it is not a timed
// unit test.
func BenchmarkLabAlert(b *testing.B) {
	for _, mode := range []struct {
		name string
		env  []string
		poll time.Duration
	}{
		{"events", nil, 0},
		{"polling-5s", []string{"DOORMAN_EVENTS=off", "DOORMAN_POLL_INTERVAL=5s"}, 5 * time.Second},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for range b.N {
				benchAlert(b, mode.name, mode.env, mode.poll)
			}
		})
	}
}

func benchAlert(b *testing.B, name string, extra []string, poll time.Duration) {
	lab.Require(b)
	l := lab.Start(b, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(b, "doorman"))
	b.Cleanup(tg.Close)
	env := runEnv(l, tg, filepath.Join(b.TempDir(), "doorman.db"), append([]string{"DOORMAN_LOG_LEVEL=info"}, extra...)...)
	p := startDoorman(b, l, env)
	defer p.stop()
	// An empty router: wait until doorman has read it once.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.logs.String(), "listed port mappings") && !strings.Contains(p.logs.String(), "receiving router events") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)

	const adds = 9
	var alerts, blocks []time.Duration
	for i := range adds {
		port := fmt.Sprint(41000 + i)
		if poll > 0 {
			// Without a pause, each add would follow right after the
			// poll that found the previous one and wait a whole interval.
			time.Sleep(rand.N(poll))
		}
		start := time.Now()
		l.Run(b, fmt.Sprintf("dev%d", 1+i%2), "upnpc", "-u", l.IGDURL, "-e", "bench "+port, "-a", l.DeviceIP(1+i%2), port, port, "TCP")
		msg, err := tg.WaitMessage(waitCtx(b, 30*time.Second), func(m telegramtest.Message) bool {
			return strings.Contains(m.Text, "<b>"+port+"</b>")
		})
		if err != nil {
			b.Fatalf("no alert for %s: %v\n%s", port, err, p.logs.String())
		}
		alerts = append(alerts, time.Since(start))
		if i%3 != 0 {
			continue
		}
		start = time.Now()
		tg.PressButton(msg.ChatID, labOwner, msg.MessageID, msg.Buttons[0][1].CallbackData)
		if _, err := tg.WaitEdit(waitCtx(b, 30*time.Second), func(e telegramtest.Edit) bool {
			return e.MessageID == msg.MessageID && strings.Contains(e.Text, "Blocked</b>")
		}); err != nil {
			b.Fatalf("block of %s not confirmed: %v", port, err)
		}
		blocks = append(blocks, time.Since(start))
	}
	fmt.Printf("%-11s add → alert:  median %7.1f ms  (min %.1f, max %.1f, n=%d)\n", name, ms(median(alerts)), ms(slices.Min(alerts)), ms(slices.Max(alerts)), len(alerts))
	fmt.Printf("%-11s Block → gone: median %7.1f ms  (min %.1f, max %.1f, n=%d)\n", name, ms(median(blocks)), ms(slices.Min(blocks)), ms(slices.Max(blocks)), len(blocks))
	b.ReportMetric(ms(median(alerts)), "alert-ms")
	b.ReportMetric(ms(median(blocks)), "block-ms")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
