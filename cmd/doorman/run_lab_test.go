package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/lab"
)

const (
	labToken  = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
	labChat   = int64(424242)
	labOwner  = int64(4242)
	labStrang = int64(6666)
)

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runningDoorman is `doorman run` on the lab's doorman host.
type runningDoorman struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer // standard output
	logs *syncBuffer // standard error: the log
	done chan struct{}
}

// runEnv is what a user sets: a token and a chat; the rest points doorman at
// the lab and the fake Telegram.
func runEnv(l *lab.Lab, tg *telegramtest.Server, dbPath string, extra ...string) []string {
	return append([]string{
		"DOORMAN_TELEGRAM_TOKEN=" + labToken,
		fmt.Sprintf("DOORMAN_TELEGRAM_CHAT_ID=%d", labChat),
		"DOORMAN_TELEGRAM_API_URL=" + tg.URL,
		fmt.Sprintf("DOORMAN_ALLOWED_USERS=%d", labOwner),
		"DOORMAN_DB=" + dbPath,
		"DOORMAN_IGD_URL=" + l.IGDURL,
		"DOORMAN_LOG_LEVEL=debug",
	}, extra...)
}

func startDoorman(t testing.TB, l *lab.Lab, env []string, command ...string) *runningDoorman {
	t.Helper()
	if len(command) == 0 {
		command = []string{"run"}
	}
	args := append([]string{"-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	args = append(append(args, doormanBinary), command...)
	cmd := l.Command(context.Background(), "doorman", "env", args...)
	p := &runningDoorman{t: t, cmd: cmd, out: &syncBuffer{}, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		if _, secret, _ := strings.Cut(labToken, ":"); strings.Contains(p.logs.String(), secret) {
			t.Error("the bot token appears in doorman's log")
		}
		if t.Failed() {
			t.Logf("doorman's output:\n%s\ndoorman's log:\n%s", p.out.String(), p.logs.String())
		}
	})
	return p
}

func (p *runningDoorman) signal(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Errorf("doorman did not stop on %s", sig)
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *runningDoorman) stop() {
	p.signal(syscall.SIGTERM)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Errorf("doorman exited with %d after SIGTERM:\n%s", code, p.logs.String())
	}
}

func (p *runningDoorman) kill() { p.signal(syscall.SIGKILL) }

func waitCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitText(t testing.TB, tg *telegramtest.Server, d time.Duration, parts ...string) telegramtest.Message {
	t.Helper()
	m, err := tg.WaitMessage(waitCtx(t, d), func(m telegramtest.Message) bool {
		for _, p := range parts {
			if !strings.Contains(m.Text, p) {
				return false
			}
		}
		return m.ChatID == labChat
	})
	if err != nil {
		for _, m := range tg.Messages() {
			t.Logf("message %d in %d: %q", m.MessageID, m.ChatID, m.Text)
		}
		t.Fatalf("no message with %q: %v", parts, err)
	}
	return m
}

func countText(tg *telegramtest.Server, parts ...string) int {
	n := 0
next:
	for _, m := range tg.Messages() {
		for _, p := range parts {
			if !strings.Contains(m.Text, p) {
				continue next
			}
		}
		n++
	}
	return n
}

func waitEdit(t testing.TB, tg *telegramtest.Server, msg telegramtest.Message, part string) telegramtest.Edit {
	t.Helper()
	e, err := tg.WaitEdit(waitCtx(t, 10*time.Second), func(e telegramtest.Edit) bool {
		return e.MessageID == msg.MessageID && strings.Contains(e.Text, part)
	})
	if err != nil {
		t.Fatalf("no edit of message %d with %q: %v", msg.MessageID, part, err)
	}
	return e
}

func press(t testing.TB, tg *telegramtest.Server, user int64, msg telegramtest.Message, data string) string {
	t.Helper()
	id := tg.PressButton(msg.ChatID, user, msg.MessageID, data)
	a, err := tg.WaitCallbackAnswer(waitCtx(t, 10*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	return a.Text
}

// routerHas reports whether upnpc lists a mapping of port/proto.
func routerHas(t testing.TB, l *lab.Lab, port, proto string) bool {
	t.Helper()
	for _, e := range lab.ParseUpnpcList(l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-l")) {
		if fmt.Sprint(e.ExternalPort) == port && strings.EqualFold(e.Protocol, proto) {
			return true
		}
	}
	return false
}

func waitGone(t testing.TB, l *lab.Lab, port, proto string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for routerHas(t, l, port, proto) {
		if time.Now().After(deadline) {
			t.Fatalf("%s %s is still on the router after %s", proto, port, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// synced waits until doorman answers /status with a finished router check,
// which tells that its first listing is done.
func synced(t testing.TB, tg *telegramtest.Server) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		n := len(tg.Messages())
		tg.SendText(labChat, labOwner, "/status")
		for range 40 {
			for _, m := range tg.Messages()[n:] {
				if strings.Contains(m.Text, "Last check:") && !strings.Contains(m.Text, "not yet") {
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Fatal("doorman did not report a finished router check in /status")
}

func TestLabRunAlertBlockAllow(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	db := filepath.Join(t.TempDir(), "doorman.db")
	env := runEnv(l, tg, db)
	dev1, dev2 := l.DeviceIP(1), l.DeviceIP(2)

	// Open before doorman came: reported once, in one message.
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "Plex Media Server", "-a", dev1, "32400", "32400", "TCP")
	p := startDoorman(t, l, env)
	report := waitText(t, tg, 20*time.Second, "already open", "32400", "Plex Media Server")
	if len(report.Buttons) != 1 {
		t.Errorf("report buttons = %+v", report.Buttons)
	}

	// A new share: an alert with buttons, quickly.
	start := time.Now()
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "garden cam", "-a", dev1, "80", "8080", "TCP")
	alert := waitText(t, tg, 10*time.Second, "New port share", "<b>8080</b>")
	t.Logf("alert %s after upnpc returned", time.Since(start))
	if !strings.Contains(alert.Text, dev1) || len(alert.Buttons) != 3 {
		t.Fatalf("alert = %+v", alert)
	}

	// A stranger's press changes nothing.
	if ans := press(t, tg, labStrang, alert, alert.Buttons[0][1].CallbackData); !strings.Contains(ans, "not allowed") {
		t.Errorf("stranger's press answered %q", ans)
	}
	if !routerHas(t, l, "8080", "TCP") {
		t.Fatal("a stranger's press closed the share")
	}

	// Block: gone from the router, the alert says so.
	start = time.Now()
	press(t, tg, labOwner, alert, alert.Buttons[0][1].CallbackData)
	waitGone(t, l, "8080", "TCP", 5*time.Second)
	t.Logf("block press to gone: %s", time.Since(start))
	if e := waitEdit(t, tg, alert, "Blocked</b> by"); e.Buttons != nil {
		t.Errorf("blocked alert keeps buttons: %+v", e.Buttons)
	}

	// The device opens it again: closed again at once, with a notice.
	addShare(t, l, "dev1", "-e", "garden cam", "-a", dev1, "80", "8080", "TCP")
	waitText(t, tg, 10*time.Second, "Closed again", "8080")
	waitGone(t, l, "8080", "TCP", 5*time.Second)

	// NAT-PMP from another device; Allow it.
	l.Run(t, "dev2", "natpmpc", "-g", l.RouterIP, "-a", "8000", "8001", "tcp", "600")
	pmp := waitText(t, tg, 10*time.Second, "New port share", "NAT-PMP 8000 tcp")
	press(t, tg, labOwner, pmp, pmp.Buttons[0][0].CallbackData)
	waitEdit(t, tg, pmp, "Allowed</b> by")

	// Across a restart of doorman the trusted service stays silent, even
	// on another external port, and nothing is asked twice.
	p.stop()
	startDoorman(t, l, env)
	l.Run(t, "dev2", "natpmpc", "-g", l.RouterIP, "-a", "8002", "8001", "tcp", "600")
	deadline := time.Now().Add(15 * time.Second)
	for {
		tg.SendText(labChat, labOwner, "/list")
		time.Sleep(300 * time.Millisecond)
		if countText(tg, "port shares open", "8002") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted doorman never listed TCP 8002")
		}
	}
	if n := countText(tg, "New port share", "8002"); n != 0 {
		t.Errorf("a trusted service was asked about again (%d alerts)", n)
	}
	if n := countText(tg, "already open"); n != 1 {
		t.Errorf("%d first-start reports, want 1", n)
	}
	if n := countText(tg, "New port share", "<b>8080</b>"); n != 1 {
		t.Errorf("%d alerts for TCP 8080, want 1", n)
	}
	if !strings.Contains(dev2, "192.168.77.") {
		t.Errorf("dev2 = %q", dev2)
	}
}

func TestLabRunOutageAndKill(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	env := runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db"))
	p := startDoorman(t, l, env)
	synced(t, tg)

	// Telegram is down while a share opens; doorman is killed while the
	// alert waits in the outbox.
	tg.Fail("sendMessage", telegramtest.Failure{Times: -1, Status: 502})
	before := tg.Calls("sendMessage")
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "during outage", "-a", l.DeviceIP(1), "443", "9443", "TCP")
	deadline := time.Now().Add(15 * time.Second)
	for tg.Calls("sendMessage") == before {
		if time.Now().After(deadline) {
			t.Fatal("doorman never tried to send the alert")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()
	tg.ClearFailures()
	if n := countText(tg, "9443"); n != 0 {
		t.Fatalf("alert delivered during the outage")
	}

	startDoorman(t, l, env)
	waitText(t, tg, 20*time.Second, "New port share", "9443", "during outage")
	synced(t, tg)
	if n := countText(tg, "New port share", "9443"); n != 1 {
		t.Errorf("%d alerts for TCP 9443 after kill -9 and restart, want 1", n)
	}

	// A second doorman on the same database refuses at once.
	out, errOut, code := runDoorman(t, l, env, "run")
	if code == 0 || !strings.Contains(errOut, "in use") {
		t.Errorf("second instance: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestLabRunSecureModeRefusal(t *testing.T) {
	lab.Require(t)
	for _, tt := range []struct {
		name string
		opts lab.Options
		code string
	}{
		{"IGDv2", lab.Options{Secure: true}, "606"},
		// LAB.md expects 714 from IGDv1, but miniupnpd 2.3.1 answers 606
		// on WANIPConnection:1 as well.
		{"IGDv1", lab.Options{Secure: true, IGDv1: true}, "606"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lab.Start(t, tt.opts)
			tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
			t.Cleanup(tg.Close)
			l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "game", "-a", l.DeviceIP(1), "27015", "27015", "UDP")
			startDoorman(t, l, runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db")))
			report := waitText(t, tg, 20*time.Second, "already open", "27015")
			press(t, tg, labOwner, report, report.Buttons[0][1].CallbackData)
			// The report holds many shares: its line says "not closed", and
			// the explanation comes in a message of its own.
			e := waitEdit(t, tg, report, "Not closed")
			waitText(t, tg, 10*time.Second, "refused", "27015", tt.code, "secure mode", "still open")
			if strings.Contains(e.Text, "blocked by") || len(e.Buttons) != 1 {
				t.Errorf("a refused block looks blocked: %+v", e)
			}
			if !routerHas(t, l, "27015", "UDP") {
				t.Error("the share is gone although the router refused")
			}
		})
	}
}

func TestLabRunRouterRestart(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	startDoorman(t, l, runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db")))
	synced(t, tg)
	dev1 := l.DeviceIP(1)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "console", "-a", dev1, "3074", "3074", "UDP")
	console := waitText(t, tg, 10*time.Second, "New port share", "<b>3074</b>")
	press(t, tg, labOwner, console, console.Buttons[0][0].CallbackData)
	waitEdit(t, tg, console, "Allowed</b> by")

	// The router restarts and forgets its table; the console maps again.
	// Doorman must find it again (new subscription), keep the trusted
	// console silent, and not report the vanished shares as anybody's
	// decision.
	l.Router(t, "restart-router")
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "console", "-a", dev1, "3074", "3074", "UDP")
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "new after restart", "-a", dev1, "5000", "5001", "TCP")
	start := time.Now()
	waitText(t, tg, 15*time.Second, "New port share", "<b>5001</b>")
	t.Logf("new share after the router restart seen in %s", time.Since(start))
	if n := countText(tg, "New port share", "<b>3074</b>"); n != 1 {
		t.Errorf("%d alerts for UDP 3074 across the router restart, want 1", n)
	}
	for _, m := range tg.Messages() {
		if strings.Contains(m.Text, "Closed again") || strings.Contains(m.Text, "blocked") {
			t.Errorf("the restart was reported as a decision: %q", m.Text)
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the new share was found %s after the restart, want within 10 s", took)
	}
}

func TestLabRunDigestClosesStaleShare(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "forgotten game", "-a", l.DeviceIP(1), "25565", "25565", "TCP")
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "in use", "-a", l.DeviceIP(1), "4000", "4000", "UDP")
	startDoorman(t, l, runEnv(l, tg, filepath.Join(t.TempDir(), "doorman.db"), "DOORMAN_STALE_AFTER=2s"))
	waitText(t, tg, 20*time.Second, "already open", "25565")
	time.Sleep(2500 * time.Millisecond)
	tg.SendText(labChat, labOwner, "/digest")
	d := waitText(t, tg, 10*time.Second, "Digest", "25565", "forgotten game", "why: open for")
	var closeData string
	// Find the Close button of the line that names port 25565.
	for _, line := range strings.Split(d.Text, "\n") {
		if strings.Contains(line, "25565") {
			n := strings.SplitN(strings.TrimSpace(line), ".", 2)[0]
			for _, row := range d.Buttons {
				if row[0].Text == "🚪 Close "+n {
					closeData = row[0].CallbackData
				}
			}
		}
	}
	if closeData == "" {
		t.Fatalf("no Close button for TCP 25565: %+v", d.Buttons)
	}
	press(t, tg, labOwner, d, closeData)
	waitGone(t, l, "25565", "TCP", 5*time.Second)
	waitEdit(t, tg, d, "closed by")
	if !routerHas(t, l, "4000", "UDP") {
		t.Error("Close removed another share too")
	}
}

// waitOutput waits until doorman's output has a line with every part.
func (p *runningDoorman) waitLine(t *testing.T, buf *syncBuffer, d time.Duration, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, line := range strings.Split(buf.String(), "\n") {
			ok := true
			for _, part := range parts {
				ok = ok && strings.Contains(line, part)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q after %s", parts, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLabTerminalMode(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	dev1 := l.DeviceIP(1)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "Plex Media Server", "-a", dev1, "32400", "32400", "TCP")
	db := filepath.Join(t.TempDir(), "doorman.db")
	env := []string{"DOORMAN_DB=" + db, "DOORMAN_IGD_URL=" + l.IGDURL}
	p := startDoorman(t, l, env)
	p.waitLine(t, p.out, 20*time.Second, "open", "TCP 32400 → "+dev1+":32400", "“Plex Media Server”", "192.168.77.1")
	p.waitLine(t, p.logs, time.Second, "@BotFather", "DOORMAN_TELEGRAM_TOKEN")

	start := time.Now()
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "garden cam", "-a", dev1, "80", "8080", "TCP")
	line := p.waitLine(t, p.out, 5*time.Second, "NEW", "TCP 8080 → "+dev1+":80", "“garden cam”")
	took := time.Since(start)
	t.Logf("terminal line %s after upnpc returned: %s", took, line)
	if took > time.Second {
		t.Errorf("the new share was printed after %s, want under a second", took)
	}
	if _, err := time.Parse("15:04:05", strings.Fields(line)[0]); err != nil {
		t.Errorf("line does not start with the time: %q", line)
	}
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-d", "8080", "TCP")
	p.waitLine(t, p.out, 5*time.Second, "gone", "TCP 8080")
	if n := strings.Count(p.logs.String(), "@BotFather"); n != 1 {
		t.Errorf("the Telegram hint was printed %d times", n)
	}
	p.stop()

	// watch: the same, with nothing stored.
	w := startDoorman(t, l, []string{"DOORMAN_IGD_URL=" + l.IGDURL, "HOME=/nonexistent"}, "watch")
	w.waitLine(t, w.out, 20*time.Second, "open", "TCP 32400")
	w.stop()
}

func TestLabPairing(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	tg := telegramtest.NewServerOn(labToken, l.Listen(t, "doorman"))
	t.Cleanup(tg.Close)
	dev1 := l.DeviceIP(1)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "before pairing", "-a", dev1, "7000", "7000", "TCP")
	env := []string{
		"DOORMAN_TELEGRAM_TOKEN=" + labToken,
		"DOORMAN_TELEGRAM_API_URL=" + tg.URL,
		"DOORMAN_DB=" + filepath.Join(t.TempDir(), "doorman.db"),
		"DOORMAN_IGD_URL=" + l.IGDURL,
	}
	p := startDoorman(t, l, env)
	line := p.waitLine(t, p.logs, 20*time.Second, "pairing code")
	code := strings.TrimSuffix(strings.Fields(line[strings.Index(line, "pairing code"):])[2], ":")
	if len(strings.ReplaceAll(code, "-", "")) < 8 {
		t.Fatalf("pairing code %q is too short (line %q)", code, line)
	}
	if link := "https://t.me/" + tg.BotUsername() + "?start=" + code; !strings.Contains(line, link) {
		t.Errorf("the pairing line lacks the link %s: %q", link, line)
	}
	const strangerChat, ownerChat = int64(9001), int64(9002)
	tg.SendText(strangerChat, labStrang, "/start ABCDE-23456")
	if _, err := tg.WaitMessage(waitCtx(t, 10*time.Second), func(m telegramtest.Message) bool {
		return m.ChatID == strangerChat && strings.Contains(m.Text, "not the pairing code")
	}); err != nil {
		t.Fatal(err)
	}
	tg.SendText(ownerChat, labOwner, "/start "+strings.ToLower(code))
	if _, err := tg.WaitMessage(waitCtx(t, 10*time.Second), func(m telegramtest.Message) bool {
		return m.ChatID == ownerChat && strings.Contains(m.Text, "paired with this chat")
	}); err != nil {
		t.Fatal(err)
	}
	// What was open before pairing is reported once, in the paired chat.
	if _, err := tg.WaitMessage(waitCtx(t, 10*time.Second), func(m telegramtest.Message) bool {
		return m.ChatID == ownerChat && strings.Contains(m.Text, "7000") && strings.Contains(m.Text, "before pairing") && len(m.Buttons) == 1
	}); err != nil {
		t.Fatal(err)
	}
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "after pairing", "-a", dev1, "7001", "7001", "TCP")
	if _, err := tg.WaitMessage(waitCtx(t, 10*time.Second), func(m telegramtest.Message) bool {
		return m.ChatID == ownerChat && strings.Contains(m.Text, "New port share") && strings.Contains(m.Text, "7001")
	}); err != nil {
		t.Fatal(err)
	}
	for _, m := range tg.Messages() {
		if m.ChatID == strangerChat && !strings.Contains(m.Text, "not the pairing code") && !strings.HasPrefix(m.Text, "/start") {
			t.Errorf("the stranger's chat got %q", m.Text)
		}
	}

	// The pairing survives a restart: no new code, alerts still go there.
	p.stop()
	p = startDoorman(t, l, env)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "after restart", "-a", dev1, "7002", "7002", "TCP")
	if _, err := tg.WaitMessage(waitCtx(t, 20*time.Second), func(m telegramtest.Message) bool {
		return m.ChatID == ownerChat && strings.Contains(m.Text, "New port share") && strings.Contains(m.Text, "7002")
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.logs.String(), "pairing code") {
		t.Error("a paired doorman printed a pairing code after a restart")
	}
}
