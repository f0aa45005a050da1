package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	cmd   string   // upper case: FROM, RUN, ...
	flags []string // leading --flags, as written
	args  string   // the rest
	line  int
}

// exec returns the arguments of the exec (JSON) form, or ok false for the
// shell form.
func (in instruction) exec() (args []string, ok bool) {
	if !strings.HasPrefix(in.args, "[") {
		return nil, false
	}
	if err := json.Unmarshal([]byte(in.args), &args); err != nil {
		return nil, false
	}
	return args, true
}

func (in instruction) flag(name string) (string, bool) {
	for _, f := range in.flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
		if f == "--"+name {
			return "", true
		}
	}
	return "", false
}

type stage struct {
	base, name string
	from       instruction
	body       []instruction
}

// parseDockerfile follows the Dockerfile reference: '#' starts a comment
// only at the start of a line, a backslash at the end of a line continues
// the instruction, and comment lines inside a continuation are dropped.
func parseDockerfile(t *testing.T, text string) (global []instruction, stages []stage) {
	t.Helper()
	var ins []instruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		full := strings.TrimSpace(cur.String())
		cur.Reset()
		if full == "" {
			continue
		}
		cmd, rest, _ := strings.Cut(full, " ")
		in := instruction{cmd: strings.ToUpper(cmd), line: start}
		rest = strings.TrimSpace(rest)
		for strings.HasPrefix(rest, "--") {
			f, r, _ := strings.Cut(rest, " ")
			in.flags = append(in.flags, f)
			rest = strings.TrimSpace(r)
		}
		in.args = rest
		ins = append(ins, in)
	}
	if cur.Len() > 0 {
		t.Errorf("Dockerfile ends inside a continued line")
	}
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{base: f[0], from: in}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			} else if len(f) != 1 {
				t.Errorf("Dockerfile:%d: FROM %s", in.line, in.args)
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Errorf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			global = append(global, in)
			continue
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	return global, stages
}

// goVersion is go.mod's toolchain line if it has one, else its go line.
func goVersion(t *testing.T) string {
	t.Helper()
	var goLine, toolchain string
	for _, line := range strings.Split(readFile(t, goModPath), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "go" {
			goLine = f[1]
		}
		if len(f) == 2 && f[0] == "toolchain" {
			toolchain = strings.TrimPrefix(f[1], "go")
		}
	}
	if toolchain != "" {
		return toolchain
	}
	if goLine == "" {
		t.Fatal("go.mod has no go line")
	}
	return goLine
}

// envPairs reads ENV KEY=value [KEY=value...] and the old ENV KEY value.
func envPairs(in instruction) map[string]string {
	out := map[string]string{}
	if k, v, ok := strings.Cut(in.args, " "); ok && !strings.Contains(k, "=") {
		out[k] = strings.TrimSpace(v)
		return out
	}
	for _, f := range strings.Fields(in.args) {
		k, v, _ := strings.Cut(f, "=")
		out[k] = strings.Trim(v, `"'`)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	text := readFile(t, dockerfilePath)
	global, stages := parseDockerfile(t, text)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s); want a builder and a small final one", len(stages))
	}

	// The builder: Go from go.mod, a static, trimmed, stamped build.
	builder := stages[0]
	if builder.name != "builder" {
		t.Errorf("Dockerfile:%d: the first stage is %q, want FROM … AS builder", builder.from.line, builder.name)
	}
	wantGo := goVersion(t)
	image, tag, _ := strings.Cut(builder.base, ":")
	if image != "golang" && !strings.HasSuffix(image, "/golang") {
		t.Errorf("Dockerfile:%d: builder is %s, want a golang image", builder.from.line, builder.base)
	}
	if tag != wantGo && !strings.HasPrefix(tag, wantGo+"-") {
		t.Errorf("Dockerfile:%d: builder is Go %q, go.mod says %s", builder.from.line, tag, wantGo)
	}
	var build string
	for _, in := range builder.body {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	if build == "" {
		t.Fatal("the builder stage has no RUN … go build")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=", "-X main.commit=", "./cmd/doorman"} {
		if !strings.Contains(build, want) {
			t.Errorf("the builder's go build lacks %s: %s", want, build)
		}
	}
	out := regexp.MustCompile(`-o\s+(\S+)`).FindStringSubmatch(build)
	if out == nil {
		t.Fatal("the builder's go build has no -o")
	}
	built := out[1]

	final := stages[len(stages)-1]
	finalImage, _, _ := strings.Cut(final.base, ":")
	if strings.HasSuffix(finalImage, "golang") || final.base == builder.name {
		t.Errorf("Dockerfile:%d: the final stage is %s; want a minimal base", final.from.line, final.base)
	}

	var (
		binary              string
		stateOwned          bool
		user                string
		entrypoint, command []string
		health              *instruction
		volumes             []string
		env                 = map[string]string{}
		copied              = map[string]bool{}
	)
	for i, in := range final.body {
		switch in.cmd {
		case "COPY", "ADD":
			from, _ := in.flag("from")
			f := strings.Fields(in.args)
			if args, ok := in.exec(); ok {
				f = args
			}
			if len(f) < 2 {
				t.Errorf("Dockerfile:%d: %s %s", in.line, in.cmd, in.args)
				continue
			}
			dst := f[len(f)-1]
			for _, src := range f[:len(f)-1] {
				copied[src] = true
				if from == "builder" && src == built {
					binary = dst
					if strings.HasSuffix(dst, "/") {
						binary = path.Join(dst, path.Base(src))
					}
				}
			}
			if chown, ok := in.flag("chown"); ok && path.Clean(dst) == stateDir && !isRoot(chown) {
				stateOwned = true
			}
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			var ok bool
			if entrypoint, ok = in.exec(); !ok {
				t.Errorf("Dockerfile:%d: ENTRYPOINT in shell form; the final image has no shell", in.line)
			}
		case "CMD":
			var ok bool
			if command, ok = in.exec(); !ok {
				t.Errorf("Dockerfile:%d: CMD in shell form; the final image has no shell", in.line)
			}
		case "HEALTHCHECK":
			health = &final.body[i]
		case "VOLUME":
			if args, ok := in.exec(); ok {
				volumes = append(volumes, args...)
			} else {
				volumes = append(volumes, strings.Fields(in.args)...)
			}
		case "ENV":
			for k, v := range envPairs(in) {
				env[k] = v
			}
		case "RUN":
			if !strings.HasPrefix(finalImage, "debian") && !strings.HasPrefix(finalImage, "alpine") {
				t.Errorf("Dockerfile:%d: RUN in the final stage, whose image has no shell", in.line)
			}
		}
	}

	if binary == "" {
		t.Errorf("the final stage does not COPY --from=builder %s", built)
	} else if binary != binaryPath {
		t.Errorf("the final stage puts doorman at %s; the systemd unit and the README use %s", binary, binaryPath)
	}

	// A non-root user, and the system files that go with it.
	name, _, _ := strings.Cut(user, ":")
	if user == "" || isRoot(name) {
		t.Errorf("the final stage runs as %q; want a non-root USER", user)
	}
	if final.base == "scratch" {
		if !copied["/etc/passwd"] {
			t.Error("FROM scratch without /etc/passwd: the user has no name")
		}
		if !copied["/etc/ssl/certs/ca-certificates.crt"] && !copied["/etc/ssl/certs/"] {
			t.Error("FROM scratch without CA certificates: HTTPS to api.telegram.org fails")
		}
	} else if !strings.Contains(final.base, "distroless/static") {
		t.Logf("final stage is %s; check that it has CA certificates", final.base)
	}

	// It runs doorman run.
	if len(entrypoint) == 0 || entrypoint[0] != binaryPath {
		t.Errorf("ENTRYPOINT is %q; want [%q]", entrypoint, binaryPath)
	}
	if strings.Join(append(entrypoint[min(1, len(entrypoint)):], command...), " ") != "run" {
		t.Errorf("ENTRYPOINT %q and CMD %q do not run `doorman run`", entrypoint, command)
	}

	// The health check is the binary itself: there is no shell or curl.
	if health == nil {
		t.Error("the final stage has no HEALTHCHECK")
	} else {
		kw, rest, _ := strings.Cut(health.args, " ")
		if strings.ToUpper(kw) != "CMD" {
			t.Errorf("Dockerfile:%d: HEALTHCHECK %s; want HEALTHCHECK CMD [...]", health.line, health.args)
		}
		args, ok := (instruction{args: strings.TrimSpace(rest)}).exec()
		if !ok {
			t.Errorf("Dockerfile:%d: HEALTHCHECK in shell form; the final image has no shell", health.line)
		} else if len(args) < 2 || args[0] != binaryPath || args[1] != healthSubcmd {
			t.Errorf("Dockerfile:%d: HEALTHCHECK runs %q; want [%q %q]", health.line, args, binaryPath, healthSubcmd)
		}
	}

	// The state is in a volume, writable by the user.
	if !contains(volumes, stateDir) {
		t.Errorf("no VOLUME %s (have %q)", stateDir, volumes)
	}
	if !stateOwned {
		t.Errorf("%s is not created owned by the non-root user (COPY --chown=...): a new volume there would be root's", stateDir)
	}
	db := env["DOORMAN_DB"]
	if db == "" && env["STATE_DIRECTORY"] != "" {
		db = env["STATE_DIRECTORY"] + "/doorman.db"
	}
	if path.Dir(db) != stateDir {
		t.Errorf("the database is at %q, outside the volume %s (set DOORMAN_DB or STATE_DIRECTORY)", db, stateDir)
	}

	// No secrets in the image: no ENV or ARG that names one with a value.
	all := append([]instruction{}, global...)
	for _, s := range stages {
		all = append(all, s.body...)
	}
	for _, in := range all {
		var pairs map[string]string
		switch in.cmd {
		case "ENV":
			pairs = envPairs(in)
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			pairs = map[string]string{k: v}
		default:
			continue
		}
		for k, v := range pairs {
			if isSecretName(k) && !strings.HasSuffix(k, "_FILE") {
				t.Errorf("Dockerfile:%d: %s %s: secrets come at run time (env file or DOORMAN_TELEGRAM_TOKEN_FILE), never in the image", in.line, in.cmd, k)
			}
			if tokenShape.MatchString(v) {
				t.Errorf("Dockerfile:%d: %s %s holds something shaped like a bot token", in.line, in.cmd, k)
			}
		}
	}
	if tokenShape.MatchString(text) {
		t.Error("Dockerfile holds something shaped like a bot token")
	}
}

func isRoot(user string) bool {
	u, _, _ := strings.Cut(strings.TrimSpace(user), ":")
	return u == "" || u == "root" || u == "0"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if path.Clean(v) == s {
			return true
		}
	}
	return false
}

// ignored reports whether .dockerignore keeps rel (a slash path from the
// repository's top) out of the build context. It follows Docker's rules
// closely enough for the patterns doorman uses: patterns are anchored at
// the top, ** matches any number of directories, a pattern that matches a
// directory excludes what is in it, and ! re-includes.
func ignored(patterns []string, rel string) bool {
	out := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		if matchPrefix(p, rel) {
			out = !neg
		}
	}
	return out
}

// matchPrefix matches pattern against rel and every parent directory of
// rel.
func matchPrefix(pattern, rel string) bool {
	parts := strings.Split(rel, "/")
	for i := 1; i <= len(parts); i++ {
		if globMatch(strings.Split(pattern, "/"), parts[:i]) {
			return true
		}
	}
	return false
}

func globMatch(pat, name []string) bool {
	if len(pat) == 0 {
		return len(name) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if globMatch(pat[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	if len(name) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], name[0])
	return err == nil && ok && globMatch(pat[1:], name[1:])
}

func TestDockerignore(t *testing.T) {
	var patterns []string
	for _, line := range strings.Split(readFile(t, dockerignore), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	// Secrets, history and build output stay out of the build context.
	for _, rel := range []string{
		".git/config",
		"deploy/doorman.env",
		"deploy/telegram_token",
		"dist/doorman-linux-amd64",
		"doorman",
		"doorman.db",
	} {
		if !ignored(patterns, rel) {
			t.Errorf(".dockerignore lets %s into the build context", rel)
		}
	}
	// Everything the build needs goes in: go.mod, go.sum and every Go file.
	need := []string{"go.mod", "go.sum"}
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() && (rel == ".git" || rel == "dist") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") {
			need = append(need, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(need) < 5 {
		t.Fatalf("found only %q in the repository", need)
	}
	for _, rel := range need {
		if ignored(patterns, rel) {
			t.Errorf(".dockerignore keeps %s out, and the build needs it", rel)
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "go.sum")); err != nil {
		t.Error(err)
	}
}

// The matcher above is what TestDockerignore trusts; check it on Docker's
// documented examples.
func TestIgnoredMatcher(t *testing.T) {
	cases := []struct {
		patterns []string
		rel      string
		want     bool
	}{
		{[]string{"*/temp*"}, "somedir/temporary.txt", true},
		{[]string{"*/temp*"}, "temp", false},
		{[]string{"*/*/temp*"}, "somedir/subdir/temporary.txt", true},
		{[]string{"temp?"}, "tempa", true},
		{[]string{"**/*.go"}, "a/b/c.go", true},
		{[]string{"**/*.go"}, "c.go", true},
		{[]string{"*.md", "!README.md"}, "README.md", false},
		{[]string{"*.md", "!README.md"}, "CHANGES.md", true},
		{[]string{".git"}, ".git/objects/ab/cd", true},
		{[]string{"doorman"}, "cmd/doorman/main.go", false},
		{[]string{"dist"}, "dist/x", true},
	}
	for _, c := range cases {
		if got := ignored(c.patterns, c.rel); got != c.want {
			t.Errorf("ignored(%q, %q) = %v, want %v", c.patterns, c.rel, got, c.want)
		}
	}
}

// The image's HEALTHCHECK runs `doorman healthcheck` with the image's
// environment: it must exit 0 when the running doorman's /healthz (at
// DOORMAN_METRICS_ADDR, which the image sets on loopback) says healthy, and
// 1 when it says unhealthy or does not answer.
func TestHealthcheckCommand(t *testing.T) {
	_, stages := parseDockerfile(t, readFile(t, dockerfilePath))
	env := map[string]string{}
	for _, in := range stages[len(stages)-1].body {
		if in.cmd == "ENV" {
			for k, v := range envPairs(in) {
				env[k] = v
			}
		}
	}
	addr := env["DOORMAN_METRICS_ADDR"]
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("the image sets no usable DOORMAN_METRICS_ADDR (%q); its HEALTHCHECK needs it", addr)
	}
	// With the host's network, anything but loopback would put the
	// metrics on the LAN unasked.
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Errorf("the image's DOORMAN_METRICS_ADDR is %s; want a loopback address", addr)
	}

	bin := buildDoorman(t)
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	listed := false
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == healthSubcmd {
			listed = true
		}
	}
	if !listed {
		t.Fatalf("doorman has no %q command, which the Dockerfile's HEALTHCHECK runs:\n%s", healthSubcmd, out)
	}

	var status atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
		fmt.Fprintln(w, "test says so")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	check := func(addr string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, healthSubcmd)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, "DOORMAN_METRICS_ADDR="+addr)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	for _, c := range []struct {
		status int
		want   int
	}{{http.StatusOK, 0}, {http.StatusServiceUnavailable, 1}} {
		status.Store(int32(c.status))
		if code, out := check(ln.Addr().String()); code != c.want {
			t.Errorf("doorman healthcheck with /healthz answering %d: exit %d, want %d\n%s", c.status, code, c.want, out)
		}
	}
	// Nobody listening: a port that was free a moment ago.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	if code, out := check(freeAddr); code != 1 {
		t.Errorf("doorman healthcheck with nothing listening: exit %d, want 1\n%s", code, out)
	}
}
