package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/bot"
)

// config is everything doorman reads from DOORMAN_* variables and flags.
type config struct {
	IGDURLs          []string
	RouterTimeout    time.Duration
	DiscoveryTimeout time.Duration
	LogLevel         slog.Level
	LogFormat        string

	TelegramToken  string
	TelegramAPIURL string
	ChatID         int64
	AllowedUsers   []int64
	DBPath         string
	PollInterval   time.Duration
	SafetyPoll     time.Duration
	Events         bool
	CallbackAddr   string

	DigestSchedule  string
	Location        *time.Location
	StaleAfter      time.Duration
	DigestSkipEmpty bool

	QuietHours bot.QuietHours
	BusyDevice approvals.BusyLimit
	TopicID    int
	Lang       bot.Lang

	MetricsAddr string
}

// setting is one configuration value: a variable, the flag that overrides it,
// and how to read it.
type setting struct {
	env   string
	flag  string // empty for secrets, which do not belong on a command line
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
			help: "How long SSDP discovery waits at most for the router to answer",
			apply: func(c *config, v string) error {
				d, err := parseDuration(v, time.Second, time.Minute)
				c.DiscoveryTimeout = d
				return err
			},
		},
		{
			env: "DOORMAN_TELEGRAM_TOKEN", def: "none: run prints shares in the terminal",
			help: "Bot token from @BotFather (secret: no flag; prefer DOORMAN_TELEGRAM_TOKEN_FILE)",
			apply: func(c *config, v string) error {
				t, err := checkToken(v)
				c.TelegramToken = t
				return err
			},
		},
		{
			env: "DOORMAN_TELEGRAM_TOKEN_FILE", flag: "telegram-token-file", arg: "PATH", def: "none",
			help: "File holding the bot token (a Docker or systemd secret)",
			apply: func(c *config, v string) error {
				raw, err := os.ReadFile(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("unable to read the token file: %w", err)
				}
				t, err := checkToken(string(raw))
				if err != nil {
					return fmt.Errorf("%s: %w", strings.TrimSpace(v), err)
				}
				c.TelegramToken = t
				return nil
			},
		},
		{
			env: "DOORMAN_TELEGRAM_CHAT_ID", flag: "chat-id", arg: "ID", def: "paired with a code",
			help: "Chat that gets the alerts (your user ID for a private chat, a negative ID for a group); wins over pairing",
			apply: func(c *config, v string) error {
				id, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil || id == 0 {
					return fmt.Errorf("%q is not a chat ID (a number such as 123456789 or -1001234567890)", v)
				}
				c.ChatID = id
				return nil
			},
		},
		{
			env: "DOORMAN_TELEGRAM_API_URL", flag: "telegram-api-url", arg: "URL", def: "https://api.telegram.org",
			help: "Bot API server, for a self-hosted one",
			apply: func(c *config, v string) error {
				v = strings.TrimRight(strings.TrimSpace(v), "/")
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("%q is not an http(s) URL", v)
				}
				c.TelegramAPIURL = v
				return nil
			},
		},
		{
			env: "DOORMAN_ALLOWED_USERS", flag: "allowed-users", arg: "ID[,ID]", def: "anyone in the chat",
			help: "Telegram user IDs who may press buttons and give commands",
			apply: func(c *config, v string) error {
				c.AllowedUsers = nil
				for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
					id, err := strconv.ParseInt(f, 10, 64)
					if err != nil || id <= 0 {
						return fmt.Errorf("%q is not a user ID", f)
					}
					c.AllowedUsers = append(c.AllowedUsers, id)
				}
				return nil
			},
		},
		{
			env: "DOORMAN_DB", flag: "db", arg: "PATH", def: "$STATE_DIRECTORY/doorman.db, else ~/.local/state/doorman/doorman.db",
			help: "State file (shares, rules, alerts, outbox)",
			apply: func(c *config, v string) error {
				c.DBPath = strings.TrimSpace(v)
				return nil
			},
		},
		{
			env: "DOORMAN_POLL_INTERVAL", flag: "poll-interval", arg: "DURATION", def: "30s",
			help: "How often the router is read when it sends no events",
			apply: func(c *config, v string) error {
				d, err := parseDuration(v, time.Second, 24*time.Hour)
				c.PollInterval = d
				return err
			},
		},
		{
			env: "DOORMAN_SAFETY_POLL_INTERVAL", flag: "safety-poll-interval", arg: "DURATION", def: "5m",
			help: "How often the router is read even while events work",
			apply: func(c *config, v string) error {
				d, err := parseDuration(v, time.Second, 24*time.Hour)
				c.SafetyPoll = d
				return err
			},
		},
		{
			env: "DOORMAN_EVENTS", flag: "events", arg: "on|off", def: "on",
			help: "Subscribe to the router's UPnP events; off polls only",
			apply: func(c *config, v string) error {
				switch strings.ToLower(strings.TrimSpace(v)) {
				case "on", "true", "yes", "1":
					c.Events = true
				case "off", "false", "no", "0":
					c.Events = false
				default:
					return fmt.Errorf("%q is not on or off", v)
				}
				return nil
			},
		},
		{
			env: "DOORMAN_CALLBACK_ADDR", flag: "callback-addr", arg: "HOST:PORT", def: "own LAN address, any port",
			help: "Where doorman listens for the router's events (fix the port for a firewall)",
			apply: func(c *config, v string) error {
				v = strings.TrimSpace(v)
				if _, _, err := net.SplitHostPort(v); err != nil {
					return fmt.Errorf("%q is not host:port (for example :47100 or 192.168.1.10:47100)", v)
				}
				c.CallbackAddr = v
				return nil
			},
		},
		{
			env: "DOORMAN_DIGEST_SCHEDULE", flag: "digest-schedule", arg: "CRON", def: "0 9 * * MON",
			help: "When the digest of stale shares is sent (5-field cron, in DOORMAN_TZ)",
			apply: func(c *config, v string) error {
				v = strings.TrimSpace(v)
				if _, err := approvals.ParseSchedule(v); err != nil {
					return err
				}
				c.DigestSchedule = v
				return nil
			},
		},
		{
			env: "DOORMAN_TZ", flag: "tz", arg: "ZONE", def: "the machine's zone",
			help: "Time zone of the schedule and of times in messages (IANA name, e.g. Europe/Berlin)",
			apply: func(c *config, v string) error {
				loc, err := time.LoadLocation(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("%q is not a time zone (an IANA name such as Europe/Berlin)", v)
				}
				c.Location = loc
				return nil
			},
		},
		{
			env: "DOORMAN_STALE_AFTER", flag: "stale-after", arg: "DURATION", def: "14d",
			help: "How long a share may stay open before the digest lists it (e.g. 14d, 36h)",
			apply: func(c *config, v string) error {
				d, err := parseDays(v)
				c.StaleAfter = d
				return err
			},
		},
		{
			env: "DOORMAN_DIGEST_SKIP_EMPTY", flag: "digest-skip-empty", arg: "true|false", def: "false",
			help: "Send nothing on an all-clear week instead of a one-line all-clear",
			apply: func(c *config, v string) error {
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("%q is not true or false", v)
				}
				c.DigestSkipEmpty = b
				return nil
			},
		},
		{
			env: "DOORMAN_QUIET_HOURS", flag: "quiet-hours", arg: "HH:MM-HH:MM", def: "off",
			help: "Questions about ordinary shares arrive without a sound in this span, in DOORMAN_TZ (e.g. 22:00-07:00); risky ports and busy devices still ring",
			apply: func(c *config, v string) error {
				q, err := bot.ParseQuietHours(v)
				c.QuietHours = q
				return err
			},
		},
		{
			env: "DOORMAN_BUSY_DEVICE", flag: "busy-device", arg: "N/DURATION", def: "5/1m",
			help: "A device that opens more than N new shares within DURATION gets one message about the whole device instead of one per share (off: never)",
			apply: func(c *config, v string) error {
				b, err := approvals.ParseBusyLimit(v)
				c.BusyDevice = b
				return err
			},
		},
		{
			env: "DOORMAN_TELEGRAM_TOPIC_ID", flag: "topic-id", arg: "ID", def: "the chat's main thread, or the topic paired in",
			help: "Forum topic of DOORMAN_TELEGRAM_CHAT_ID's group that gets every message (the number after the last / of a topic's link)",
			apply: func(c *config, v string) error {
				id, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || id <= 0 {
					return fmt.Errorf("%q is not a topic ID (a positive number such as 42)", v)
				}
				c.TopicID = id
				return nil
			},
		},
		{
			env: "DOORMAN_LANG", flag: "lang", arg: "en|de", def: "the language of who paired",
			help: "Language of doorman's chat messages and buttons; the log and the terminal stay English",
			apply: func(c *config, v string) error {
				l, err := bot.ParseLang(v)
				c.Lang = l
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
		{
			env: "DOORMAN_METRICS_ADDR", flag: "metrics-addr", arg: "HOST:PORT", def: "off",
			help: "Serve Prometheus metrics at /metrics and the health check at /healthz here (e.g. 127.0.0.1:9177; :9177 for the LAN)",
			apply: func(c *config, v string) error {
				v = strings.TrimSpace(v)
				_, port, err := net.SplitHostPort(v)
				if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 1 || p > 65535 {
					return fmt.Errorf("%q is not host:port with a port (for example 127.0.0.1:9177 or :9177)", v)
				}
				c.MetricsAddr = v
				return nil
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
		TelegramAPIURL:   "https://api.telegram.org",
		PollInterval:     30 * time.Second,
		SafetyPoll:       5 * time.Minute,
		Events:           true,
		DigestSchedule:   approvals.DefaultDigestSchedule,
		Location:         time.Local,
		StaleAfter:       approvals.DefaultStaleAfter,
		BusyDevice:       approvals.DefaultBusyLimit,
	}
}

// parseDays reads a Go duration that may also count days ("14d", "1d12h"),
// because stale periods are thought of in days.
func parseDays(v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	var total time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%q is not a duration (for example 14d or 36h)", v)
		}
		total = time.Duration(days * 24 * float64(time.Hour))
		s = s[i+1:]
	}
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (for example 14d or 36h)", v)
		}
		total += d
	}
	if total < time.Second || total > 3650*24*time.Hour {
		return 0, fmt.Errorf("%s is out of range (1s to 3650d)", v)
	}
	return total, nil
}

// checkToken trims a bot token and checks its shape, without ever putting
// the token into the error.
func checkToken(v string) (string, error) {
	t := strings.TrimSpace(v)
	id, secret, ok := strings.Cut(t, ":")
	if _, err := strconv.ParseInt(id, 10, 64); !ok || err != nil || len(secret) < 20 || strings.ContainsAny(secret, " \t\r\n/?#%") {
		return "", errors.New("does not look like a bot token (digits, a colon, then about 35 letters, as @BotFather gives it)")
	}
	return t, nil
}

// defaultDBPath is systemd's state directory when doorman runs as a
// service, else the XDG state directory of the user.
func defaultDBPath(getenv func(string) string) string {
	if d := getenv("STATE_DIRECTORY"); d != "" {
		// systemd lists several directories separated by colons when a
		// unit asks for several; the first is doorman's.
		d, _, _ = strings.Cut(d, ":")
		return filepath.Join(d, "doorman.db")
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "doorman", "doorman.db")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "doorman", "doorman.db")
	}
	return "doorman.db"
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
// loadCommandConfig adds the settings' flags to fs, parses args and loads
// the configuration, for the commands that report a bad flag or setting on
// stderr with exit code 2. ok false means the command is over, with code.
func loadCommandConfig(fs *flag.FlagSet, args []string, e env) (cfg config, code int, ok bool) {
	load := configFlags(fs)
	if code, done := parseFlags(fs, args); done {
		return config{}, code, false
	}
	cfg, err := load(e.getenv)
	if err != nil {
		printError(e.stderr, err)
		return config{}, exitUsage, false
	}
	return cfg, 0, true
}

func configFlags(fs *flag.FlagSet) (load func(getenv func(string) string) (config, error)) {
	given := map[string]string{}
	for _, s := range settings() {
		if s.flag == "" {
			continue
		}
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
		if c.DBPath == "" {
			c.DBPath = defaultDBPath(getenv)
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
		if s.flag == "" {
			fmt.Fprintf(w, "  %s\n      %s (default: %s)\n", s.env, s.help, s.def)
			continue
		}
		fmt.Fprintf(w, "  %s, --%s %s\n      %s (default: %s)\n", s.env, s.flag, s.arg, s.help, s.def)
	}
}
