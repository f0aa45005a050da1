// Package deploy holds the files that install doorman (the Dockerfile at the
// top of the repository, the Compose file, the systemd unit, the example
// settings) and tests that check them, since neither Docker nor a running
// systemd is there in CI to try them.
package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Paths from this directory; go test runs in it.
const (
	repoRoot       = ".."
	dockerfilePath = "../Dockerfile"
	dockerignore   = "../.dockerignore"
	composePath    = "docker-compose.yml"
	envExample     = "doorman.env.example"
	unitPath       = "systemd/doorman.service"
	readmePath     = "../README.md"
	goModPath      = "../go.mod"
)

// The places every install method agrees on.
const (
	binaryPath   = "/usr/local/bin/doorman"
	stateDir     = "/var/lib/doorman"
	unitEnvFile  = "/etc/doorman/doorman.env"
	composeEnv   = "doorman.env"
	envFileBase  = "doorman.env" // the example is this name plus ".example"
	healthSubcmd = "healthcheck"
)

// tokenShape is what a Telegram bot token looks like: the bot's ID, a colon
// and about 35 characters.
var tokenShape = regexp.MustCompile(`[0-9]{5,}:[A-Za-z0-9_-]{30,}`)

func readFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// envLine is one VARIABLE=value line of the example env file.
type envLine struct {
	key, value string
	commented  bool
	line       int
}

var envKey = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// parseEnvFile reads an env file as both systemd's EnvironmentFile= and
// Compose's env_file read it, and fails on lines they might read
// differently (quotes, export, spaces around =). Commented-out settings
// ("#DOORMAN_X=...") are returned with commented set.
func parseEnvFile(t *testing.T, text string) []envLine {
	t.Helper()
	var out []envLine
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			continue
		}
		commented := false
		if strings.HasPrefix(trimmed, "#") {
			body := strings.TrimPrefix(trimmed, "#")
			k, _, ok := strings.Cut(body, "=")
			if !ok || !envKey.MatchString(k) {
				continue // prose
			}
			trimmed, commented = body, true
		}
		if line != strings.TrimLeft(line, " \t") {
			t.Errorf("%s:%d: indented; Compose and systemd treat leading blanks differently", envExample, n)
		}
		k, v, ok := strings.Cut(trimmed, "=")
		switch {
		case !ok:
			t.Errorf("%s:%d: not VARIABLE=value: %q", envExample, n, line)
			continue
		case strings.HasPrefix(k, "export "):
			t.Errorf("%s:%d: no export: Compose does not understand it", envExample, n)
		case !envKey.MatchString(k):
			t.Errorf("%s:%d: %q is not a variable name (no blanks around =)", envExample, n, k)
		case strings.ContainsAny(v, `"'`):
			t.Errorf("%s:%d: no quotes: Compose and systemd strip them differently", envExample, n)
		case strings.HasPrefix(v, " "):
			t.Errorf("%s:%d: blank after =", envExample, n)
		}
		out = append(out, envLine{key: k, value: v, commented: commented, line: n})
	}
	return out
}

// readmeSettings returns the variables in README's settings table, which a
// test in cmd/doorman keeps equal to the ones doorman reads.
func readmeSettings(t *testing.T) map[string]bool {
	t.Helper()
	vars := map[string]bool{}
	for _, line := range strings.Split(readFile(t, readmePath), "\n") {
		if strings.HasPrefix(line, "| `DOORMAN_") {
			vars[strings.Trim(strings.Split(line, "|")[1], " `")] = true
		}
	}
	if len(vars) == 0 {
		t.Fatal("README.md has no settings table")
	}
	return vars
}

func TestEnvExample(t *testing.T) {
	if filepath.Base(envExample) != envFileBase+".example" {
		t.Fatalf("the example env file %s is not %s.example", envExample, envFileBase)
	}
	text := readFile(t, envExample)
	lines := parseEnvFile(t, text)
	known := readmeSettings(t)

	set := map[string]envLine{}
	mentioned := map[string]bool{}
	for _, l := range lines {
		if !known[l.key] {
			t.Errorf("%s:%d: %s is not one of doorman's settings (README's table)", envExample, l.line, l.key)
		}
		if !l.commented {
			if _, dup := set[l.key]; dup {
				t.Errorf("%s:%d: %s set twice", envExample, l.line, l.key)
			}
			set[l.key] = l
		}
		mentioned[l.key] = true
	}
	// The two a user must fill in are there to fill in, and empty.
	for _, k := range []string{"DOORMAN_TELEGRAM_TOKEN", "DOORMAN_TELEGRAM_CHAT_ID"} {
		l, ok := set[k]
		if !ok {
			t.Errorf("%s does not set %s (a line to fill in)", envExample, k)
		} else if l.value != "" {
			t.Errorf("%s:%d: %s must be empty in the example, not %q", envExample, l.line, k, l.value)
		}
	}
	for _, k := range []string{"DOORMAN_ALLOWED_USERS", "DOORMAN_IGD_URL", "DOORMAN_TELEGRAM_TOKEN_FILE"} {
		if !mentioned[k] {
			t.Errorf("%s does not mention %s", envExample, k)
		}
	}
	// An empty DOORMAN_DB would take the database out of the Docker volume
	// (the image sets it); systemd gives doorman $STATE_DIRECTORY.
	if l, ok := set["DOORMAN_DB"]; ok {
		t.Errorf("%s:%d: DOORMAN_DB must stay commented out: the image and the unit choose the state file", envExample, l.line)
	}
	if tokenShape.MatchString(text) {
		t.Errorf("%s holds something shaped like a bot token", envExample)
	}
}

// composeFile is the Compose file, read line by line: it is simple enough,
// and there is no YAML parser among doorman's modules.
type composeLine struct {
	indent int
	text   string // without indentation and comment
	n      int
}

func readCompose(t *testing.T) []composeLine {
	t.Helper()
	var out []composeLine
	for i, line := range strings.Split(readFile(t, composePath), "\n") {
		if strings.Contains(line, "\t") {
			t.Errorf("%s:%d: tab (YAML forbids tabs for indentation)", composePath, i+1)
		}
		body := strings.TrimLeft(line, " ")
		if body == "" || strings.HasPrefix(body, "#") {
			continue
		}
		if j := strings.Index(body, " #"); j >= 0 {
			body = body[:j]
		}
		out = append(out, composeLine{indent: len(line) - len(body), text: strings.TrimRight(body, " "), n: i + 1})
	}
	return out
}

// block returns the lines nested under the line at index i.
func block(lines []composeLine, i int) []composeLine {
	var out []composeLine
	for _, l := range lines[i+1:] {
		if l.indent <= lines[i].indent {
			break
		}
		out = append(out, l)
	}
	return out
}

// field returns the value of "key: value" among lines at the given indent.
func field(lines []composeLine, indent int, key string) (string, int, bool) {
	for i, l := range lines {
		if l.indent == indent && (l.text == key+":" || strings.HasPrefix(l.text, key+": ")) {
			return strings.TrimSpace(strings.TrimPrefix(l.text, key+":")), i, true
		}
	}
	return "", -1, false
}

func TestCompose(t *testing.T) {
	lines := readCompose(t)
	_, si, ok := field(lines, 0, "services")
	if !ok {
		t.Fatalf("%s has no services", composePath)
	}
	services := block(lines, si)
	if len(services) == 0 || !strings.HasSuffix(services[0].text, ":") {
		t.Fatalf("%s: services is empty", composePath)
	}
	_, di, ok := field(services, services[0].indent, "doorman")
	if !ok {
		t.Fatalf("%s has no doorman service", composePath)
	}
	svc := block(services, di)
	in := svc[0].indent

	want := map[string]string{
		"network_mode": "host", // SSDP multicast and the router's events need the LAN
		"env_file":     composeEnv,
		"restart":      "unless-stopped",
	}
	for k, v := range want {
		got, _, ok := field(svc, in, k)
		if !ok || strings.Trim(got, `"'`) != v {
			t.Errorf("%s: the doorman service needs %s: %s (has %q)", composePath, k, v, got)
		}
	}
	if composeEnv+".example" != filepath.Base(envExample) {
		t.Errorf("%s reads %s, but the example to copy is %s", composePath, composeEnv, envExample)
	}
	// With the host's network, published ports mean nothing and mislead.
	if _, _, ok := field(svc, in, "ports"); ok {
		t.Errorf("%s: ports with network_mode: host", composePath)
	}

	// The build is the Dockerfile at the top of the repository.
	if _, bi, ok := field(svc, in, "build"); ok {
		b := block(svc, bi)
		ctx, _, _ := field(b, b[0].indent, "context")
		df, _, ok := field(b, b[0].indent, "dockerfile")
		if !ok {
			df = "Dockerfile"
		}
		if p := filepath.Join(ctx, df); filepath.Clean(p) != filepath.Clean(dockerfilePath) {
			t.Errorf("%s builds %s, not the repository's Dockerfile", composePath, p)
		}
	} else {
		t.Errorf("%s: the doorman service has no build", composePath)
	}

	// The state is in a named volume at the image's state directory.
	_, vi, ok := field(svc, in, "volumes")
	if !ok {
		t.Fatalf("%s: the doorman service has no volumes", composePath)
	}
	var named string
	for _, l := range block(svc, vi) {
		src, dst, _ := strings.Cut(strings.Trim(strings.TrimPrefix(l.text, "- "), `"'`), ":")
		dst, _, _ = strings.Cut(dst, ":")
		if dst == stateDir {
			named = src
		}
	}
	if named == "" {
		t.Errorf("%s mounts nothing at %s", composePath, stateDir)
	} else if strings.ContainsAny(named, "/.~$") {
		t.Errorf("%s mounts %s at %s; want a named volume", composePath, named, stateDir)
	} else if _, ti, ok := field(lines, 0, "volumes"); !ok {
		t.Errorf("%s has no top-level volumes for %s", composePath, named)
	} else if _, _, ok := field(block(lines, ti), 2, named); !ok {
		t.Errorf("%s does not declare the volume %s", composePath, named)
	}

	// No token in the file: it is in doorman.env or a secret.
	for _, l := range lines {
		k, v, _ := strings.Cut(strings.TrimPrefix(l.text, "- "), ":")
		if kk, vv, ok := strings.Cut(k, "="); ok {
			k, v = kk, vv
		}
		if isSecretName(k) && strings.TrimSpace(v) != "" && !strings.HasSuffix(k, "_FILE") {
			t.Errorf("%s:%d: %s given inline; put it in %s", composePath, l.n, k, composeEnv)
		}
		if tokenShape.MatchString(l.text) {
			t.Errorf("%s:%d: something shaped like a bot token", composePath, l.n)
		}
	}
}

// isSecretName reports whether a variable's name says it holds a secret.
func isSecretName(name string) bool {
	n := strings.ToUpper(strings.TrimSpace(name))
	for _, s := range []string{"TOKEN", "PASSWORD", "PASSWD", "SECRET", "API_KEY", "PRIVATE_KEY"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// The README tells people how to install with each file; the file names
// and paths it gives must be the real ones.
func TestREADMEInstall(t *testing.T) {
	text := readFile(t, readmePath)
	start := strings.Index(text, "\n## Install\n")
	if start < 0 {
		t.Fatal("README.md has no ## Install section")
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	run := strings.Index(text, "\n## Run it\n")
	list := strings.Index(text, "\n## List the shares\n")
	if run < 0 || list < 0 || !(run < start && start < list) {
		t.Error("README.md: ## Install belongs between ## Run it and ## List the shares")
	}
	for _, want := range []string{
		"make release",
		"dist/doorman-linux-amd64",
		"dist/doorman-linux-arm64",
		"dist/doorman-linux-armv7",
		"dist/doorman-linux-mipsle",
		"cp deploy/doorman.env.example deploy/doorman.env",
		"docker compose -f deploy/docker-compose.yml up -d",
		binaryPath,
		"/etc/systemd/system",
		unitEnvFile,
		"600",
		"systemctl enable --now doorman",
		stateDir,
	} {
		if !strings.Contains(section, want) {
			t.Errorf("README.md's Install section does not mention %q", want)
		}
	}
	for _, p := range []string{dockerfilePath, composePath, envExample, unitPath, "../Makefile"} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
}
