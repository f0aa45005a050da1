package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/lab"
)

// doorman run with DOORMAN_METRICS_ADDR in the lab: doorman healthcheck on
// the same host says healthy once the router was read, /metrics shows the
// share it asked about and the subscription, and after doorman stopped the
// health check fails.
func TestLabMetricsAndHealthcheck(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	const addr = "127.0.0.1:9177"
	env := runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db"), "DOORMAN_METRICS_ADDR="+addr)
	p := startDoorman(t, l, env)
	synced(t, tg)

	deadline := time.Now().Add(20 * time.Second)
	for {
		stdout, stderr, code := runDoorman(t, l, env, "healthcheck")
		if code == 0 && stdout == "doorman: healthy\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("doorman healthcheck never said healthy: %d %s %s", code, stdout, stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}

	dev1 := l.DeviceIP(1)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "garden cam", "-a", dev1, "80", "8080", "TCP")
	waitText(t, tg, 10*time.Second, "New port share", "<b>8080</b>")
	want := []string{
		fmt.Sprintf("doorman_port_shares{router=%q,state=\"pending\"} 1", l.RouterID),
		fmt.Sprintf("doorman_router_events_subscribed{router=%q,service=\"urn:schemas-upnp-org:service:WANIPConnection:2\"} 1", l.RouterID),
		"doorman_alerts_sent_total 1",
		"doorman_healthy 1",
	}
	var metrics string
	for {
		metrics = scrapeInLab(t, l, "http://"+addr+"/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(metrics, w) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("/metrics lacks %s:\n%s", missing, metrics)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(metrics, "doorman_router_last_list_timestamp_seconds{") {
		t.Error("/metrics has no last list time")
	}

	p.stop()
	stdout, stderr, code := runDoorman(t, l, env, "healthcheck")
	if code != 1 || !strings.Contains(stderr, "no answer from http://"+addr+"/healthz") {
		t.Errorf("doorman healthcheck after doorman stopped: %d %q %q", code, stdout, stderr)
	}
}

// scrapeInLab fetches url from the doorman host, where doorman listens.
func scrapeInLab(t *testing.T, l *lab.Lab, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := l.Command(ctx, "doorman", "curl", "-sS", "--noproxy", "*", url).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", url, err)
	}
	return string(out)
}
