// Command doorman watches the port shares (UPnP IGD port mappings) on a home
// router.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

// exitUsage is the exit code for a command line or configuration doorman
// cannot use; 1 is for everything that went wrong at run time.
const exitUsage = 2

// env is what a command needs from the process, so that tests can run
// commands in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// defaultMemoryLimit is a soft limit for the Go heap: doorman runs on
// routers and small boards, and without it a first listing of a thousand
// shares lets garbage pile up well past what doorman keeps. GOMEMLIMIT
// overrides it.
const defaultMemoryLimit = 16 << 20

func main() {
	crashOnPanic()
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, e env) int
}

func commands() []command {
	return []command{
		{"run", "watch the router and ask in Telegram about new port shares (or print them, without a token)", runRun},
		{"watch", "print the router's port shares as they change, storing nothing", runWatch},
		{"list", "print the router's port shares", runList},
		{"check", "check the setup: router, events, Telegram token and chat; one line each, with the fix", runCheck},
		{"repair", "repair a damaged database: keep a copy of it and start a new one with what can still be read", runRepair},
		{"healthcheck", "ask the running doorman whether it is healthy (needs DOORMAN_METRICS_ADDR; exit 0 or 1)", runHealthcheck},
		{"version", "print doorman's version", runVersion},
	}
}

func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], e)
		}
	}
	fmt.Fprintf(e.stderr, "doorman: unknown command %q (try doorman --help)\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `doorman watches the port shares that devices open on your router (UPnP IGD
port mappings) and asks you whether to allow or block each one.

Usage:
  doorman COMMAND [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	writeSettingsHelp(w)
	fmt.Fprintln(w, "\nRun doorman COMMAND --help for a command's own flags.")
}

// newFlagSet returns a flag set whose --help prints the command's usage and
// the settings, to stdout, and which returns errors instead of exiting.
func newFlagSet(name, synopsis string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := e.stdout
		fmt.Fprintf(w, "Usage:\n  doorman %s\n\n", synopsis)
		var own []string
		fs.VisitAll(func(f *flag.Flag) {
			for _, s := range settings() {
				if s.flag == f.Name {
					return
				}
			}
			own = append(own, fmt.Sprintf("  --%s\n      %s", f.Name, f.Usage))
		})
		if len(own) > 0 {
			fmt.Fprintf(w, "Flags:\n%s\n\n", strings.Join(own, "\n"))
		}
		writeSettingsHelp(w)
	}
	return fs
}

// parseFlags parses args; done is true when the command should return code
// at once (--help, or a bad flag).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "doorman %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, true
	}
	return 0, false
}

func newLogger(c config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// printError prints err as one line: errors.Join puts its parts on lines of
// their own, and a router's text may hold line breaks too.
func printError(w io.Writer, err error) {
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	fmt.Fprintf(w, "doorman: %s\n", msg)
}

func runVersion(_ context.Context, args []string, e env) int {
	fs := newFlagSet("version", "version", e)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	rev := commit
	if rev == "" {
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					rev = s.Value
				}
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	fmt.Fprintf(e.stdout, "doorman %s (commit %s, %s, %s/%s)\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
