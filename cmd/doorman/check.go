package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/doorman-upnp/doorman/bot"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

const (
	// checkEventWait is how long the events check waits for the router's
	// first event; miniupnpd sends it within milliseconds.
	checkEventWait = 3 * time.Second
	// checkDBTimeout is how long the check waits for the database: a
	// running doorman holds it, and the check must neither block that
	// doorman nor wait for it.
	checkDBTimeout = 300 * time.Millisecond
)

// runCheck is the doctor for a first setup: one line per check, ✓ or ✗ with
// the fix, or – for what it cannot or need not tell. It changes nothing:
// the events check subscribes and unsubscribes at once, and it sends no
// Telegram message.
func runCheck(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("check", "check [flags]", e)
	load := configFlags(fs)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	d := &doctor{w: e.stdout}
	cfg, err := load(e.getenv)
	if err != nil {
		d.fail("settings", err.Error(), "correct or remove that setting (doorman --help lists them all)")
		return d.summary()
	}
	events := "on"
	if !cfg.Events {
		events = "off"
	}
	d.ok("settings", "usable (database %s, events %s)", cfg.DBPath, events)
	d.checkDatabase(ctx, cfg.DBPath)

	logger := newLogger(cfg, e.stderr)
	client := watcher.New(watcher.Config{
		IGDURLs:          cfg.IGDURLs,
		RequestTimeout:   cfg.RouterTimeout,
		DiscoveryTimeout: cfg.DiscoveryTimeout,
		Logger:           logger,
	})
	d.checkRouter(ctx, cfg, client)
	d.checkTelegram(ctx, cfg, logger)
	return d.summary()
}

// doctor writes the lines of doorman check.
type doctor struct {
	w      io.Writer
	failed int
	// damagedDB is set when the database line said it is damaged, so
	// that the chat line does not say it again.
	damagedDB bool
}

func (d *doctor) ok(what, format string, args ...any) {
	fmt.Fprintf(d.w, "✓ %s: %s\n", what, oneLine(fmt.Sprintf(format, args...)))
}

// note is a line that is neither good nor bad: something doorman does not
// need, or cannot tell.
func (d *doctor) note(what, format string, args ...any) {
	fmt.Fprintf(d.w, "– %s: %s\n", what, oneLine(fmt.Sprintf(format, args...)))
}

func (d *doctor) fail(what, problem, fix string) {
	d.failed++
	problem = strings.TrimSuffix(oneLine(problem), ".")
	fmt.Fprintf(d.w, "✗ %s: %s. Fix: %s\n", what, problem, oneLine(fix))
}

func (d *doctor) summary() int {
	if d.failed > 0 {
		fmt.Fprintf(d.w, "%d problem(s) found.\n", d.failed)
		return 1
	}
	fmt.Fprintln(d.w, "All checks passed.")
	return 0
}

// oneLine keeps a line one line: errors.Join puts its parts on lines of
// their own, and a router's or Telegram's text may hold anything.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func (d *doctor) checkRouter(ctx context.Context, cfg config, client *watcher.Client) {
	gws, err := client.Gateways(ctx)
	fix := "check DOORMAN_IGD_URL: it must be the router's root description URL (upnpc -l shows it), and UPnP must be on in the router"
	if len(cfg.IGDURLs) == 0 {
		fix = "turn UPnP on in the router; if it is not this machine's default gateway or does not answer SSDP searches, give its description URL with DOORMAN_IGD_URL (upnpc -l shows it)"
	}
	if err != nil {
		d.fail("router", withIGDURLHint(err).Error(), fix)
	}
	for _, gw := range gws {
		name := gw.FriendlyName
		if name == "" {
			name = "router"
		}
		var about []string
		if v := igdVersion(gw.DeviceType); v != "" {
			about = append(about, v)
		}
		for _, s := range gw.Services {
			about = append(about, s.ShortType())
		}
		d.ok("router", "%s at %s (%s)", name, gw.URL, strings.Join(about, ", "))

		ms, err := client.ListMappings(ctx, gw)
		if err != nil {
			d.fail("shares", fmt.Sprintf("%s (read %d before the error)", err, len(ms)),
				"make sure UPnP is on in the router and allowed for this machine (miniupnpd: an allow line for its address in miniupnpd.conf or /etc/config/upnpd)")
		} else {
			d.ok("shares", "%d port share(s) listed on %s", len(ms), watcher.RouterHost(gw.URL))
		}

		for _, svc := range gw.Services {
			d.checkEvents(ctx, cfg, client, gw, svc)
		}
	}
	if len(gws) > 0 {
		// miniupnpd's secure mode and the FRITZ!Box's per-device
		// permission refuse a delete only when it is tried, and trying
		// would close a share.
		d.note("blocking", "cannot tell without changing a share; if the router refuses Block, doorman says so and what to change (README: When the router refuses Block)")
	}
}

func (d *doctor) checkEvents(ctx context.Context, cfg config, client *watcher.Client, gw *watcher.Gateway, svc *watcher.Service) {
	if !cfg.Events {
		d.note("events", "off (DOORMAN_EVENTS=off): doorman reads the router every %s", cfg.PollInterval)
		return
	}
	p, err := client.ProbeEvents(ctx, gw, svc, cfg.CallbackAddr, checkEventWait)
	var genaErr *watcher.GENAError
	switch {
	case errors.Is(err, watcher.ErrNoEventURL):
		d.note("events", "the router offers none for %s; doorman reads it every %s instead", svc.ShortType(), cfg.PollInterval)
	case errors.As(err, &genaErr):
		d.fail("events", fmt.Sprintf("the router refused a subscription to %s (HTTP %d); doorman would read it every %s instead", svc.ShortType(), genaErr.Status, cfg.PollInterval),
			"turn UPnP events on in the router if it has such a setting; if DOORMAN_CALLBACK_ADDR is set, its address must be this machine's address in the router's LAN")
	case err != nil:
		d.fail("events", err.Error(), "check DOORMAN_CALLBACK_ADDR: an address of this machine in the router's LAN and a free port, e.g. :47100")
	case !p.Delivered:
		where := callbackHost(p.Callback)
		problem := fmt.Sprintf("the router accepted a subscription to %s, but its first event did not reach doorman at %s within %s; doorman would read the router every %s instead", svc.ShortType(), where, checkEventWait, cfg.PollInterval)
		if p.PortInUse {
			problem += fmt.Sprintf(" (the port of DOORMAN_CALLBACK_ADDR=%s is in use, by a running doorman perhaps, so another one was tried)", cfg.CallbackAddr)
		}
		d.fail("events", problem, "let the router reach this machine over TCP: set DOORMAN_CALLBACK_ADDR=:47100 and open TCP port 47100 for the LAN in this machine's firewall")
	default:
		msg := fmt.Sprintf("%s subscribed, and the router's first event reached doorman at %s (unsubscribed again)", svc.ShortType(), callbackHost(p.Callback))
		if p.PortInUse {
			msg += fmt.Sprintf("; the port of DOORMAN_CALLBACK_ADDR=%s is in use, by a running doorman perhaps, so another one was tried", cfg.CallbackAddr)
		}
		d.ok("events", "%s", msg)
	}
}

// igdVersion says "IGDv2" for urn:schemas-upnp-org:device:InternetGatewayDevice:2.
func igdVersion(deviceType string) string {
	_, v, ok := strings.Cut(deviceType, ":InternetGatewayDevice:")
	if !ok || v == "" {
		return ""
	}
	return "IGDv" + v
}

// callbackHost is the host:port of a callback URL, without the path.
func callbackHost(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return raw
}

func (d *doctor) checkTelegram(ctx context.Context, cfg config, logger *slog.Logger) {
	if cfg.TelegramToken == "" {
		d.note("Telegram", "not set up: doorman run prints shares in the terminal. For alerts with Allow and Block buttons, create a bot with @BotFather (/newbot) and set DOORMAN_TELEGRAM_TOKEN (or DOORMAN_TELEGRAM_TOKEN_FILE)")
		return
	}
	api, err := bot.NewTelegramAPI(bot.TelegramConfig{Token: cfg.TelegramToken, BaseURL: cfg.TelegramAPIURL, Logger: logger})
	if err != nil {
		d.fail("Telegram", err.Error(), "check DOORMAN_TELEGRAM_TOKEN and DOORMAN_TELEGRAM_API_URL")
		return
	}
	me, err := api.GetMe(ctx)
	switch {
	case bot.IsUnauthorized(err):
		d.fail("Telegram", "the bot token was rejected (401 Unauthorized)",
			"copy the token again from @BotFather (/mybots → your bot → API Token) into DOORMAN_TELEGRAM_TOKEN; a token revoked there no longer works")
		return
	case err != nil:
		d.fail("Telegram", fmt.Sprintf("no answer from the Bot API at %s: %v", cfg.TelegramAPIURL, err),
			"check that this machine reaches "+cfg.TelegramAPIURL+" over HTTPS (HTTPS_PROXY if it needs a proxy), and DOORMAN_TELEGRAM_API_URL")
		return
	}
	d.ok("Telegram", "the token works: bot @%s", me.Username)

	chat, from := cfg.ChatID, "DOORMAN_TELEGRAM_CHAT_ID"
	if chat == 0 {
		var ok bool
		if chat, ok = d.pairedChat(ctx, cfg.DBPath); !ok {
			return
		}
		from = "paired"
	}
	c, err := api.GetChat(ctx, chat)
	switch {
	case err == nil:
		d.ok("chat", "%s reachable (%s)", describeChat(c), from)
	case bot.IsForbidden(err):
		d.fail("chat", fmt.Sprintf("the bot may not write to chat %d (%s): the user blocked it, or it was removed from the group", chat, from),
			"unblock the bot in Telegram, or add it to the group again")
	case isChatNotFound(err):
		d.fail("chat", fmt.Sprintf("Telegram knows no chat %d for this bot (%s)", chat, from),
			"send the bot a message from that chat first (for a group, add the bot to it), and check the ID: your user ID for a private chat, the group's negative ID for a group")
	default:
		d.fail("chat", err.Error(), "check this machine's internet access and try again")
	}
}

// checkDatabase opens the state file, which checks every page of it,
// unless a running doorman holds it (that doorman checked it at its start).
func (d *doctor) checkDatabase(ctx context.Context, path string) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		d.note("database", "%s does not exist yet; doorman run makes it", path)
		return
	}
	db, err := storage.Open(ctx, path, storage.Options{Timeout: checkDBTimeout})
	switch {
	case errors.Is(err, storage.ErrInUse):
		d.note("database", "%s is in use by a running doorman, which checked it when it started", path)
		return
	case errors.Is(err, storage.ErrDamaged):
		d.damagedDB = true
		d.fail("database", fmt.Sprintf("%s is damaged (%s)", path, damageDetail(path, err)), repairAdvice(path))
		return
	case err != nil:
		d.fail("database", err.Error(), "run doorman check as the user doorman runs as")
		return
	}
	defer db.Close()
	if wf := db.WriteFault(); wf != nil {
		d.fail("database", fmt.Sprintf("%s can be read but not written: %v", path, wf.Err), "make room on the disk, or mount it read-write again (a memory card that became read-only by itself is wearing out)")
		return
	}
	var shares, rules int
	db.View(func(tx *storage.Tx) error {
		shares, rules, _, _ = tx.Count()
		return nil
	})
	d.ok("database", "%s is sound (remembers %d share(s) and %d rule(s))", path, shares, rules)
}

// pairedChat reads the chat paired with /start from the database, if it can
// without getting in a running doorman's way: that doorman holds the file,
// and opening it waits a moment at most.
func (d *doctor) pairedChat(ctx context.Context, path string) (int64, bool) {
	unpaired := "none set and none paired yet: start doorman run and send your bot \"/start CODE\" with the pairing code it prints, or set DOORMAN_TELEGRAM_CHAT_ID"
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		d.note("chat", "%s", unpaired)
		return 0, false
	}
	db, err := storage.Open(ctx, path, storage.Options{Timeout: checkDBTimeout})
	switch {
	case errors.Is(err, storage.ErrInUse):
		d.note("chat", "the database %s is in use by a running doorman, so the paired chat was not read; /status in that chat shows it works (or set DOORMAN_TELEGRAM_CHAT_ID to check a chat here)", path)
		return 0, false
	case errors.Is(err, storage.ErrDamaged) && d.damagedDB:
		d.note("chat", "the paired chat was not read: the database is damaged (see above)")
		return 0, false
	case err != nil:
		d.fail("chat", fmt.Sprintf("unable to read the paired chat: %v", err),
			"run doorman check as the user doorman runs as, or set DOORMAN_TELEGRAM_CHAT_ID")
		return 0, false
	}
	defer db.Close()
	chat, err := bot.LoadOwnerChat(db)
	switch {
	case errors.Is(err, storage.ErrDamaged) && d.damagedDB:
		d.note("chat", "the paired chat was not read: the database is damaged (see above)")
		return 0, false
	case err != nil:
		d.fail("chat", fmt.Sprintf("unable to read the paired chat: %v", err), "set DOORMAN_TELEGRAM_CHAT_ID")
		return 0, false
	case chat == 0:
		d.note("chat", "%s", unpaired)
		return 0, false
	}
	return chat, true
}

func isChatNotFound(err error) bool {
	var e *bot.APIError
	return errors.As(err, &e) && e.Code == 400 && strings.Contains(strings.ToLower(e.Description), "chat not found")
}

func describeChat(c bot.Chat) string {
	switch c.Type {
	case "private":
		who := c.Name
		if c.Username != "" {
			who = strings.TrimSpace(who + " @" + c.Username)
		}
		if who == "" {
			return fmt.Sprintf("private chat %d", c.ID)
		}
		return fmt.Sprintf("private chat %d with %s", c.ID, oneLine(who))
	case "":
		return fmt.Sprintf("chat %d", c.ID)
	}
	if c.Title == "" {
		return fmt.Sprintf("%s %d", c.Type, c.ID)
	}
	return fmt.Sprintf("%s %d “%s”", c.Type, c.ID, oneLine(c.Title))
}
