package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"
)

// config is everything doorman reads from DOORMAN_* variables and flags.
type config struct {
	IGDURLs          []string
	RouterTimeout    time.Duration
	DiscoveryTimeout time.Duration
	LogLevel         slog.Level
	LogFormat        string
}

// setting is one configuration value: a variable, the flag that overrides it,
// and how to read it.
type setting struct {
	env   string
	flag  string
	arg   string // what the flag takes, for the help text
	def   string // the default, for the help text
	help  string
	apply func(c *config, value string) error
}

// settings lists every setting; the help text and the README's table come
// from here.
func settings() []setting {
	return []setting{
		{
			env: "DOORMAN_IGD_URL", flag: "igd-url", arg: "URL[,URL]", def: "discover",
			help: "Root description URL of the router, comma-separated for several; skips SSDP discovery",
			apply: func(c *config, v string) error {
				c.IGDURLs = nil
				for _, s := range strings.Split(v, ",") {
					s = strings.TrimSpace(s)
					if s == "" {
						continue
					}
					u, err := url.Parse(s)
					if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
						return fmt.Errorf("%q is not an http:// URL (for example http://192.168.1.1:5000/rootDesc.xml)", s)
					}
					c.IGDURLs = append(c.IGDURLs, s)
				}
				return nil
			},
		},
		{
			env: "DOORMAN_ROUTER_TIMEOUT", flag: "router-timeout", arg: "DURATION", def: "5s",
			help: "How long one request to the router may take",
			apply: func(c *config, v string) error {
				d, err := parseDuration(v, time.Millisecond, time.Minute)
				c.RouterTimeout = d
				return err
			},
		},
		{
			env: "DOORMAN_DISCOVERY_TIMEOUT", flag: "discovery-timeout", arg: "DURATION", def: "2s",
			help: "How long SSDP discovery waits for the router to answer",
			apply: func(c *config, v string) error {
				d, err := parseDuration(v, time.Second, time.Minute)
				c.DiscoveryTimeout = d
				return err
			},
		},
		{
			env: "DOORMAN_LOG_LEVEL", flag: "log-level", arg: "LEVEL", def: "info",
			help: "debug, info, warn or error",
			apply: func(c *config, v string) error {
				if err := c.LogLevel.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
					return fmt.Errorf("%q is not a log level (debug, info, warn, error)", v)
				}
				return nil
			},
		},
		{
			env: "DOORMAN_LOG_FORMAT", flag: "log-format", arg: "FORMAT", def: "text",
			help: "text or json",
			apply: func(c *config, v string) error {
				switch f := strings.ToLower(strings.TrimSpace(v)); f {
				case "text", "json":
					c.LogFormat = f
					return nil
				}
				return fmt.Errorf("%q is not a log format (text, json)", v)
			},
		},
	}
}

func defaultConfig() config {
	return config{
		RouterTimeout:    5 * time.Second,
		DiscoveryTimeout: 2 * time.Second,
		LogLevel:         slog.LevelInfo,
		LogFormat:        "text",
	}
}

func parseDuration(v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (for example 5s or 500ms)", v)
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("%s is out of range (%s to %s)", d, lo, hi)
	}
	return d, nil
}

// configFlags registers the settings' flags on fs. After fs.Parse, load gives
// the configuration: the defaults, then the environment, then the flags.
func configFlags(fs *flag.FlagSet) (load func(getenv func(string) string) (config, error)) {
	given := map[string]string{}
	for _, s := range settings() {
		fs.Func(s.flag, s.help, func(v string) error {
			given[s.flag] = v
			return nil
		})
	}
	return func(getenv func(string) string) (config, error) {
		c := defaultConfig()
		for _, s := range settings() {
			if v := getenv(s.env); v != "" {
				if err := s.apply(&c, v); err != nil {
					return config{}, fmt.Errorf("%s: %w", s.env, err)
				}
			}
		}
		for _, s := range settings() {
			if v, ok := given[s.flag]; ok {
				if err := s.apply(&c, v); err != nil {
					return config{}, fmt.Errorf("--%s: %w", s.flag, err)
				}
			}
		}
		return c, nil
	}
}

// writeSettingsHelp prints the settings as a table for --help.
func writeSettingsHelp(w io.Writer) {
	ss := settings()
	sort.SliceStable(ss, func(i, j int) bool { return ss[i].env < ss[j].env })
	fmt.Fprintln(w, "Settings (environment variable, or the flag that overrides it):")
	for _, s := range ss {
		fmt.Fprintf(w, "  %s, --%s %s\n      %s (default: %s)\n", s.env, s.flag, s.arg, s.help, s.def)
	}
}
