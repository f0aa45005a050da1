package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/lab"
)

// BenchmarkLabResources measures doorman run's memory and idle CPU with
// 1,000 mappings on the lab router: peak and current RSS after the first
// listing and report, and CPU used over an idle minute (events on, the
// default 5-minute safety poll). Run by deploy/lab/bench-resources.sh.
func BenchmarkLabResources(b *testing.B) {
	for range b.N {
		lab.Require(b)
		l := lab.Start(b, lab.Options{})
		start := time.Now()
		l.Run(b, "dev1", "bash", "-c", `for p in $(seq 20000 20999); do upnpc -u "$1" -e "bench $p" -a "$2" "$p" "$p" UDP 86400 >/dev/null || exit 1; done`, "_", l.IGDURL, l.DeviceIP(1))
		fmt.Printf("added 1000 mappings in %s\n", time.Since(start).Round(time.Millisecond))

		tg := telegramtest.NewServerOn(labToken, l.Listen(b, "doorman"))
		b.Cleanup(tg.Close)
		p := startDoorman(b, l, runEnv(l, tg, filepath.Join(b.TempDir(), "doorman.db"), append([]string{"DOORMAN_LOG_LEVEL=info"}, strings.Fields(os.Getenv("BENCH_ENV"))...)...))
		start = time.Now()
		deadline := start.Add(2 * time.Minute)
		for countText(tg, "already open") < 67 {
			if time.Now().After(deadline) {
				b.Fatalf("only %d report messages after 2 minutes\n%s", countText(tg, "already open"), p.logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Printf("first listing and report of 1000 shares (67 messages) in %s\n", time.Since(start).Round(time.Millisecond))
		pid := p.cmd.Process.Pid
		time.Sleep(2 * time.Second)
		rss, hwm := memOf(b, pid)
		cpu0 := cpuOf(b, pid)
		idle := time.Minute
		if s := os.Getenv("BENCH_IDLE"); s != "" {
			idle, _ = time.ParseDuration(s)
		}
		time.Sleep(idle)
		cpu1 := cpuOf(b, pid)
		rss2, hwm2 := memOf(b, pid)
		fmt.Printf("RSS after the report: %.1f MiB (peak %.1f MiB)\n", mib(rss), mib(hwm))
		fmt.Printf("RSS after %s idle: %.1f MiB (peak %.1f MiB)\n", idle, mib(rss2), mib(hwm2))
		fmt.Printf("CPU over %s idle: %s (%.3f%% of one core)\n", idle, cpu1-cpu0, 100*float64(cpu1-cpu0)/float64(idle))
		b.ReportMetric(mib(hwm2), "peak-MiB")
		b.ReportMetric(100*float64(cpu1-cpu0)/float64(idle), "idle-cpu-%")
		p.stop()
	}
}

// memOf reads VmRSS and VmHWM (peak) of a process, in bytes.
func memOf(b *testing.B, pid int) (rss, hwm int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n << 10
		case "VmHWM:":
			hwm = n << 10
		}
	}
	return rss, hwm
}

// cpuOf reads the user and system CPU time a process used.
func cpuOf(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name may hold spaces; fields count from after it.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	// USER_HZ is 100 on Linux.
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
