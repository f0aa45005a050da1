package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// unitFile is a systemd unit: section → key → values, in order (a key may
// be given several times).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, text string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		case strings.HasSuffix(line, "\\"):
			t.Fatalf("%s:%d: continued lines are not expected here", unitPath, i+1)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q", unitPath, i+1, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u
}

// last is the value in effect: the last one given.
func (u unitFile) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// words is every word of every value of a list setting such as After=.
func (u unitFile) words(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, readFile(t, unitPath))

	for _, want := range []struct{ section, key, value string }{
		{"Service", "ExecStart", binaryPath + " run"},
		{"Service", "EnvironmentFile", unitEnvFile},
		{"Service", "DynamicUser", "yes"},
		{"Service", "StateDirectory", "doorman"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "Restart", "on-failure"},
		// cmd/doorman's exitUsage, and only it: a damaged database or a
		// panic exits 1 and must be restarted.
		{"Service", "RestartPreventExitStatus", "2"},
		{"Service", "LimitCORE", "0"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := u.last(want.section, want.key); got != want.value {
			t.Errorf("[%s] %s=%q, want %q", want.section, want.key, got, want.value)
		}
	}
	if d, err := time.ParseDuration(u.last("Service", "RestartSec")); err != nil || d < time.Second {
		t.Errorf("RestartSec=%q; want a pause of a second or more between restarts", u.last("Service", "RestartSec"))
	}
	for _, key := range []string{"After", "Wants"} {
		if !containsWord(u.words("Unit", key), "network-online.target") {
			t.Errorf("%s= lacks network-online.target: doorman needs the LAN up to find the router", key)
		}
	}

	// The network doorman needs: IPv4/IPv6 for the router and Telegram,
	// netlink to list the interfaces, AF_UNIX for the journal.
	families := u.words("Service", "RestrictAddressFamilies")
	if strings.HasPrefix(strings.Join(families, " "), "~") {
		t.Errorf("RestrictAddressFamilies=%q is a deny list; want an allow list", families)
	}
	for _, f := range []string{"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"} {
		if !containsWord(families, f) {
			t.Errorf("RestrictAddressFamilies= lacks %s", f)
		}
	}
	// Settings that would break it: no network of its own, no IP filter
	// that stops the router's events or Telegram, not root.
	for _, bad := range []struct{ key, value string }{
		{"PrivateNetwork", "yes"},
		{"PrivateNetwork", "true"},
		{"IPAddressDeny", "any"},
		{"User", "root"},
		{"User", "0"},
	} {
		if strings.EqualFold(u.last("Service", bad.key), bad.value) {
			t.Errorf("%s=%s breaks doorman", bad.key, bad.value)
		}
	}
	// No capabilities: the listener is on a high port, joining a multicast
	// group is unprivileged.
	if caps, ok := u["Service"]["CapabilityBoundingSet"]; !ok || u.last("Service", "CapabilityBoundingSet") != "" {
		t.Errorf("CapabilityBoundingSet=%q; want it empty", caps)
	}

	// The env file: the example is what goes there.
	if filepath.Base(unitEnvFile) != envFileBase || filepath.Base(envExample) != envFileBase+".example" {
		t.Errorf("the unit reads %s, but the example to copy there is %s", unitEnvFile, envExample)
	}
	// The unit's own install notes give the same paths.
	text := readFile(t, unitPath)
	for _, want := range []string{unitEnvFile, "deploy/doorman.env.example", binaryPath} {
		if !strings.Contains(text, want) {
			t.Errorf("%s's comments do not mention %s", unitPath, want)
		}
	}
}

func containsWord(words []string, w string) bool {
	for _, v := range words {
		if v == w {
			return true
		}
	}
	return false
}

// systemdAnalyze finds systemd-analyze, or skips the test (fails it in CI:
// test.sh installs the systemd package).
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"systemd-analyze", "/usr/bin/systemd-analyze", "/bin/systemd-analyze"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	const why = "systemd-analyze is not installed (Debian package systemd; ./test.sh installs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildDoorman builds doorman for this machine, once for all tests.
func buildDoorman(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "doorman-deploy-test-")
		if built.err != nil {
			return
		}
		bin := filepath.Join(built.dir, "doorman")
		goTool := "go"
		if p, err := exec.LookPath("go"); err == nil {
			goTool = p
		}
		cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/doorman")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("building doorman: %v\n%s", err, out)
			return
		}
		built.bin = bin
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// verifyUnit runs systemd-analyze verify on unit text, with ExecStart
// pointing at bin, and returns what it says about the unit. It works
// without a running systemd: it loads the unit in a private manager.
func verifyUnit(t *testing.T, analyze, unitText, bin string) (complaints []string, err error) {
	t.Helper()
	dir := t.TempDir()
	text := strings.ReplaceAll(unitText, "ExecStart="+binaryPath+" ", "ExecStart="+bin+" ")
	if text == unitText {
		t.Fatalf("%s has no ExecStart=%s …", unitPath, binaryPath)
	}
	file := filepath.Join(dir, "doorman.service")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, "verify", "--man=no", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice", "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	// Unknown keys and bad values are only warnings (exit code 0), each on
	// a line naming the file or the unit. Complaints about other units
	// (the host's) are not doorman's.
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		if strings.Contains(line, file) || strings.Contains(line, "doorman.service") {
			complaints = append(complaints, line)
		} else {
			t.Logf("systemd-analyze (not about doorman): %s", line)
		}
	}
	return complaints, err
}

func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze := systemdAnalyze(t)
	unitText := readFile(t, unitPath)
	bin := buildDoorman(t)

	complaints, err := verifyUnit(t, analyze, unitText, bin)
	if err != nil {
		t.Errorf("systemd-analyze verify: %v", err)
	}
	for _, c := range complaints {
		t.Errorf("systemd-analyze verify: %s", c)
	}

	// The check sees mistakes: a misspelt key and a wrong address family.
	broken := strings.Replace(unitText, "ProtectHome=yes", "ProtectHome=yes\nProtectHomme=yes\nRestrictAddressFamilies=AF_INETT", 1)
	complaints, _ = verifyUnit(t, analyze, broken, bin)
	if len(complaints) < 2 {
		t.Errorf("systemd-analyze verify did not flag a misspelt key and a bad address family: %q", complaints)
	}
	// And a missing binary.
	if _, err := verifyUnit(t, analyze, unitText, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("systemd-analyze verify passed a unit whose binary does not exist")
	}
}

// systemd-analyze security rates the sandbox from 0 (locked down) to 10
// (unprotected); the hardening must keep doorman well below a plain
// service's 9.6.
func TestSystemdAnalyzeSecurity(t *testing.T) {
	analyze := systemdAnalyze(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "doorman.service")
	if err := os.WriteFile(file, []byte(readFile(t, unitPath)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, "security", "--offline=true", "--no-pager", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice", "SYSTEMD_LOG_COLOR=0", "SYSTEMD_COLORS=0")
	out, err := cmd.CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for doorman\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f", level)
	if level > maxExposure {
		t.Errorf("systemd-analyze security rates the unit %.1f, above %.1f:\n%s", level, maxExposure, out)
	}
}

// maxExposure is the worst systemd-analyze security rating allowed. What
// keeps doorman above 0: it needs the network (IPv4, IPv6, netlink), no
// private user namespace, and a system call filter that allows
// @system-service.
const maxExposure = 2.5
