package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/fakefritz"
)

// fritzBox is the stand-in FRITZ!Box: the real 7590 igddesc.xml and its
// IGD:2 twin on one address and port, one table behind both.
func fritzBox(t *testing.T) (*fakefritz.Box, []fakefritz.Row) {
	b := fakefritz.New(t, capture(t, "avm-fritzbox7590-rootdesc.xml"))
	rows := []fakefritz.Row{
		{Protocol: "TCP", ExternalPort: 32400, InternalClient: "192.168.178.20", InternalPort: 32400, Description: "Plex"},
		{Protocol: "UDP", ExternalPort: 51413, InternalClient: "192.168.178.21", InternalPort: 51413, Description: "Transmission"},
		{Protocol: "UDP", ExternalPort: 3074, InternalClient: "192.168.178.22", InternalPort: 3074, Description: "Xbox"},
	}
	b.SetTable(rows...)
	return b, rows
}

// TestListFritzBoxOnce: with both descriptions of a FRITZ!Box configured
// (as discovery finds them), doorman list shows every share once.
func TestListFritzBoxOnce(t *testing.T) {
	b, rows := fritzBox(t)
	vars := map[string]string{"DOORMAN_IGD_URL": b.IGD1URL() + "," + b.IGD2URL()}
	stdout, stderr, code := runCommand(t, vars, "list", "--json")
	if code != 0 {
		t.Fatalf("doorman list exited %d: %s", code, stderr)
	}
	var got []mappingJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(got) != len(rows) {
		t.Errorf("listed %d shares, want %d:\n%s", len(got), len(rows), stdout)
	}
	stdout, stderr, code = runCommand(t, vars, "list")
	if code != 0 {
		t.Fatalf("doorman list exited %d: %s", code, stderr)
	}
	if n := strings.Count(stdout, "FRITZ!Box 7590 at "); n != 1 {
		t.Errorf("the router is shown %d times:\n%s", n, stdout)
	}
	if !strings.Contains(stdout, b.IGD2URL()) {
		t.Errorf("the table is not read through igd2desc.xml:\n%s", stdout)
	}
	for _, r := range rows {
		if n := strings.Count(stdout, r.Description); n != 1 {
			t.Errorf("%s is listed %d times:\n%s", r.Description, n, stdout)
		}
	}
	if n := b.Requests("POST " + fakefritz.IGD1Control + "#GetGenericPortMappingEntry"); n != 0 {
		t.Errorf("the IGD:1 service was listed too (%d requests)", n)
	}
}

// startRun runs doorman run in-process until the test ends; stop ends it
// sooner.
func startRun(t *testing.T, vars map[string]string) (logs *syncBuffer, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"run"}, env{stdout: &bytes.Buffer{}, stderr: logs, getenv: func(k string) string { return vars[k] }})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("doorman run did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return logs, stop
}

func fritzRunEnv(t *testing.T, tg *telegramtest.Server, db string, urls ...string) map[string]string {
	return map[string]string{
		"DOORMAN_IGD_URL":          strings.Join(urls, ","),
		"DOORMAN_DB":               db,
		"DOORMAN_ROUTER_TIMEOUT":   "2s",
		"DOORMAN_POLL_INTERVAL":    "1s",
		"DOORMAN_TELEGRAM_TOKEN":   testToken,
		"DOORMAN_TELEGRAM_API_URL": tg.URL,
		"DOORMAN_TELEGRAM_CHAT_ID": strconv.FormatInt(testChat, 10),
	}
}

// askedAbout counts how often the chat was asked about r: a share's line
// in a list quotes its description, an alert has it after "Description: ".
func askedAbout(tg *telegramtest.Server, r fakefritz.Row) int {
	n := 0
	for _, m := range tg.Messages() {
		n += strings.Count(m.Text, "“"+r.Description+"”") + strings.Count(m.Text, "Description: "+r.Description)
	}
	return n
}

// TestRunFritzBoxAsksOnce: doorman run watching a FRITZ!Box asks about
// every share once, the ones there at the start and a new one.
func TestRunFritzBoxAsksOnce(t *testing.T) {
	b, rows := fritzBox(t)
	tg := telegramtest.NewServer(testToken)
	defer tg.Close()
	logs, _ := startRun(t, fritzRunEnv(t, tg, filepath.Join(t.TempDir(), "doorman.db"), b.IGD1URL(), b.IGD2URL()))
	wait, stop := context.WithTimeout(context.Background(), 15*time.Second)
	defer stop()
	if _, err := tg.WaitMessage(wait, func(m telegramtest.Message) bool { return strings.Contains(m.Text, rows[len(rows)-1].Description) }); err != nil {
		t.Fatalf("no question about the shares there at the start: %v\n%s", err, logs.String())
	}
	added := fakefritz.Row{Protocol: "TCP", ExternalPort: 4000, InternalClient: "192.168.178.23", InternalPort: 4000, Description: "new game"}
	b.SetTable(append(rows, added)...)
	if _, err := tg.WaitMessage(wait, func(m telegramtest.Message) bool { return strings.Contains(m.Text, added.Description) }); err != nil {
		t.Fatalf("no question about the new share: %v\n%s", err, logs.String())
	}
	// A few more polls: a second watch would have asked again by now.
	time.Sleep(3 * time.Second)
	for _, r := range append(rows, added) {
		if n := askedAbout(tg, r); n != 1 {
			t.Errorf("asked %d times about %s (%d), want once", n, r.Description, r.ExternalPort)
		}
	}
	if n := b.Requests("POST " + fakefritz.IGD1Control + "#GetGenericPortMappingEntry"); n != 0 {
		t.Errorf("the IGD:1 service was listed %d times", n)
	}
}

// TestRunFritzBoxTwinSwitch: a run that found only the FRITZ!Box's
// igddesc.xml (an SSDP answer lost; or an older doorman, which watched
// both) stored the shares under the IGD:1 description. The next run
// watches igd2desc.xml: same router, same table, nothing asked again.
func TestRunFritzBoxTwinSwitch(t *testing.T) {
	b, rows := fritzBox(t)
	tg := telegramtest.NewServer(testToken)
	defer tg.Close()
	db := filepath.Join(t.TempDir(), "doorman.db")
	logs, stop := startRun(t, fritzRunEnv(t, tg, db, b.IGD1URL()))
	wait, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := tg.WaitMessage(wait, func(m telegramtest.Message) bool { return strings.Contains(m.Text, rows[len(rows)-1].Description) }); err != nil {
		t.Fatalf("no question about the shares: %v\n%s", err, logs.String())
	}
	stop()
	listed := b.Requests("POST " + fakefritz.IGD2Control + "#GetGenericPortMappingEntry")
	logs, _ = startRun(t, fritzRunEnv(t, tg, db, b.IGD1URL(), b.IGD2URL()))
	deadline := time.Now().Add(10 * time.Second)
	for b.Requests("POST "+fakefritz.IGD2Control+"#GetGenericPortMappingEntry") < listed+2*(len(rows)+1) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	for _, r := range rows {
		if n := askedAbout(tg, r); n != 1 {
			t.Errorf("asked %d times about %s (%d), want once\n%s", n, r.Description, r.ExternalPort, logs.String())
		}
	}
}
