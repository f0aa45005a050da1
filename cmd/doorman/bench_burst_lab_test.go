package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/lab"
)

// BenchmarkLabBurst runs the burst of TestLabRunBusyDevice (one device opens
// 60 shares as fast as upnpc can, the owner presses Block everything) and
// prints the messages doorman sent about the device, the time from the
// first share to the busy-device message, and from Block everything to the
// last share gone. It is run by deploy/lab/bench-burst.sh.
func BenchmarkLabBurst(b *testing.B) {
	for range b.N {
		lab.Require(b)
		l := lab.Start(b, lab.Options{})
		tg := telegramtest.NewServerOn(labToken, l.Listen(b, "doorman"))
		b.Cleanup(tg.Close)
		p := startDoorman(b, l, runEnv(l, tg, filepath.Join(b.TempDir(), "doorman.db"), "DOORMAN_LOG_LEVEL=info"))
		synced(b, tg)
		f := runBurst(b, l, tg)
		p.stop()
		fmt.Printf("burst of %d shares from one device: %d messages sent about it (%d busy-device)\n", f.shares, f.messages, f.busyMsgs)
		fmt.Printf("first share → busy-device message: %7.1f ms\n", ms(f.toMessage))
		fmt.Printf("Block everything → last share gone: %7.1f ms\n", ms(f.toAllGone))
		b.ReportMetric(float64(f.messages), "messages")
		b.ReportMetric(ms(f.toMessage), "message-ms")
		b.ReportMetric(ms(f.toAllGone), "gone-ms")
	}
}
