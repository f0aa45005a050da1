package bot

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// metaOffset keeps the next getUpdates offset, so that a restart neither
// replays presses nor loses the ones that came while doorman was down.
const metaOffset = "telegram_offset"

// Config configures a Bot.
type Config struct {
	API    API
	DB     *storage.DB
	Engine *approvals.Engine
	Outbox *Outbox
	// ChatID is the owner chat: alerts go there, and only presses and
	// commands from there count. 0 means the chat is paired with a code
	// (see StartPairing), or was paired before. The engine keeps the chat
	// (Engine.Chat); the bot sets it there.
	ChatID int64
	// ShowPairingCode tells the owner a pairing code, in the terminal or
	// log only.
	ShowPairingCode func(code string, expires time.Time)
	// AllowedUsers may press buttons and give commands; empty means
	// anyone in the owner chat.
	AllowedUsers []int64
	// Devices, when set, names the devices in /list.
	Devices Devices
	// Status reports the watched routers for /status.
	Status      func() []watcher.ServiceStatus
	PollTimeout time.Duration
	Location    *time.Location
	Logger      *slog.Logger
	Now         func() time.Time
}

// Bot is doorman in the chat: it reads updates, answers buttons and
// commands, and runs the outbox.
type Bot struct {
	api    API
	db     *storage.DB
	engine *approvals.Engine
	outbox *Outbox
	// fixedChat is set when the chat came from the configuration, which
	// always wins over pairing.
	fixedChat bool
	pair      pairing
	allowed   []int64
	devices   Devices
	status    func() []watcher.ServiceStatus
	poll      time.Duration
	loc       *time.Location
	logger    *slog.Logger
	now       func() time.Time
}

// New returns a Bot for cfg.
func New(cfg Config) (*Bot, error) {
	if cfg.API == nil || cfg.DB == nil || cfg.Engine == nil || cfg.Outbox == nil {
		return nil, errors.New("bot: API, DB, Engine and Outbox are required")
	}
	b := &Bot{
		api: cfg.API, db: cfg.DB, engine: cfg.Engine, outbox: cfg.Outbox, fixedChat: cfg.ChatID != 0,
		allowed: slices.Clone(cfg.AllowedUsers), devices: cfg.Devices, status: cfg.Status, poll: cfg.PollTimeout,
		loc: cfg.Location, logger: cfg.Logger, now: cfg.Now,
	}
	b.pair.show = cfg.ShowPairingCode
	switch {
	case cfg.ChatID != 0:
		cfg.Engine.SetChat(cfg.ChatID)
	case cfg.Engine.Chat() == 0:
		owner, err := LoadOwnerChat(cfg.DB)
		if err != nil {
			return nil, fmt.Errorf("bot: unable to read the paired chat: %w", err)
		}
		cfg.Engine.SetChat(owner)
	}
	if b.loc == nil {
		b.loc = time.Local
	}
	if b.logger == nil {
		b.logger = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.status == nil {
		b.status = func() []watcher.ServiceStatus { return nil }
	}
	return b, nil
}

// commandMenu is what setMyCommands registers, and what /help explains.
var commandMenu = []Command{
	{"list", "current port shares and their state"},
	{"trusted", "services you allowed, to forget one"},
	{"blocked", "services you blocked, to forget one"},
	{"status", "router, events, last check, outbox"},
	{"digest", "the shares worth closing, now"},
	{"unpair", "stop sending alerts to this chat"},
	{"help", "what doorman does and how to answer it"},
}

// Run registers the commands, delivers the outbox and answers updates
// until ctx is done.
func (b *Bot) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.outbox.Run(ctx)
	}()
	go b.registerCommands(ctx)
	var offset int
	if err := b.db.View(func(tx *storage.Tx) error {
		_, err := tx.Meta(metaOffset, &offset)
		return err
	}); err != nil {
		b.logger.Error("unable to read the Telegram update offset; starting from Telegram's", "err", err)
	}
	err := Poll(ctx, b.api, PollConfig{Offset: offset, Timeout: b.poll, Logger: b.logger}, b.handle)
	cancel()
	<-done
	return err
}

func (b *Bot) registerCommands(ctx context.Context) {
	for n := 1; ; n++ {
		err := b.api.SetCommands(ctx, "", commandMenu)
		if err == nil {
			return
		}
		if ctx.Err() != nil || !IsRetryable(err) {
			if ctx.Err() == nil {
				b.logger.Warn("unable to register the command menu", "err", err)
			}
			return
		}
		wait := max(RetryAfterOf(err), backoff(time.Second, time.Minute, n))
		if pollSleep(ctx, wait) != nil {
			return
		}
	}
}

func (b *Bot) handle(ctx context.Context, updates []Update) error {
	for _, u := range updates {
		switch {
		case u.Callback != nil:
			b.handleCallback(ctx, u.Callback)
		case u.Message != nil:
			b.handleMessage(ctx, u.Message)
		}
	}
	if len(updates) == 0 {
		return nil
	}
	next := updates[len(updates)-1].ID + 1
	return b.db.Update(func(tx *storage.Tx) error { return tx.SetMeta(metaOffset, next) })
}

func (b *Bot) isAllowed(userID int64) bool {
	return len(b.allowed) == 0 || slices.Contains(b.allowed, userID)
}

func (b *Bot) answer(ctx context.Context, cb *Callback, text string) {
	if err := b.api.AnswerCallback(ctx, cb.ID, text); err != nil {
		b.logger.Warn("unable to answer a button press", "err", err)
	}
}

func (b *Bot) handleCallback(ctx context.Context, cb *Callback) {
	log := b.logger.With("user", cb.From.ID, "chat", cb.ChatID, "data", cb.Data)
	switch {
	case cb.ChatID != b.engine.Chat():
		log.Warn("refused a button press from another chat")
		b.answer(ctx, cb, "This button does not work in this chat.")
		return
	case !b.isAllowed(cb.From.ID):
		log.Warn("refused a button press from a user not allowed to decide")
		b.answer(ctx, cb, "Sorry, you are not allowed to decide here.")
		return
	}
	if isDigestVerb(cb.Data) {
		b.handleDigestPress(ctx, cb, storage.User{ID: cb.From.ID, Name: cb.From.Display()})
		return
	}
	verb, id, ok := parseCallbackData(cb.Data)
	if !ok {
		log.Warn("refused a button press doorman does not know")
		b.answer(ctx, cb, "Unknown button.")
		return
	}
	who := storage.User{ID: cb.From.ID, Name: cb.From.Display()}
	if verb == verbForget {
		b.forget(ctx, cb, id)
		return
	}
	a, err := b.engine.Alert(ctx, id)
	switch {
	case errors.Is(err, approvals.ErrUnknownAlert):
		b.answer(ctx, cb, "Doorman does not know this share (any more).")
		return
	case err != nil:
		log.Error("unable to read an alert", "err", err)
		b.answer(ctx, cb, "Doorman could not read its database; try again.")
		return
	case a.ChatID != cb.ChatID || (a.MessageID != 0 && a.MessageID != cb.MessageID):
		// MessageID is 0 for the moment between Telegram's answer to
		// sendMessage and the outbox recording it; a fast tap lands there.
		log.Warn("refused a press naming an alert of another message", "alert", id)
		b.answer(ctx, cb, "This button does not belong to this message.")
		return
	case a.State != storage.AlertPending:
		b.answer(ctx, cb, alreadyDecided(a))
		return
	}
	m := a.Share.Mapping
	d := approvals.Allow
	text := fmt.Sprintf("Allowing %s %d.", m.Protocol, m.ExternalPort)
	switch verb {
	case verbBlock:
		d = approvals.Block
		text = fmt.Sprintf("Closing %s %d on the router…", m.Protocol, m.ExternalPort)
	case verbAllowDevice:
		d = approvals.AllowDevice
		text = "Trusting everything " + m.InternalClient + " opens."
	case verbBlockDevice:
		d = approvals.BlockDevice
		text = "Closing everything " + m.InternalClient + " opens…"
	}
	// Answer first: Telegram shows a spinner until the answer comes, and
	// a delete on a slow router can take seconds.
	b.answer(ctx, cb, text)
	_, err = b.engine.Decide(ctx, id, d, who)
	var refused *approvals.RefusedError
	switch {
	case err == nil, errors.Is(err, approvals.ErrDecided), errors.Is(err, approvals.ErrInProgress):
	case errors.As(err, &refused):
		log.Warn("the router refused to close a share", "alert", id, "err", err)
	default:
		log.Error("unable to carry out a decision", "alert", id, "decision", string(d), "err", err)
	}
}

func alreadyDecided(a storage.Alert) string {
	switch a.State {
	case storage.AlertAllowed:
		return "Already allowed by " + a.DecidedBy.Name + "."
	case storage.AlertBlocked:
		return "Already blocked by " + a.DecidedBy.Name + "."
	}
	return "This question no longer applies."
}

func (b *Bot) forget(ctx context.Context, cb *Callback, id uint64) {
	r, err := b.engine.ForgetRule(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		b.answer(ctx, cb, "That rule is already gone.")
		return
	}
	if err != nil {
		b.logger.Error("unable to forget a rule", "rule", id, "err", err)
		b.answer(ctx, cb, "Doorman could not forget the rule; try again.")
		return
	}
	b.answer(ctx, cb, "Forgotten. Doorman will ask again when this service opens a share.")
	pages, kbs, err := b.renderRules(ctx, r.Kind)
	if err != nil || len(pages) == 0 {
		return
	}
	// The list was sent as one or more messages; only the pressed one is
	// refreshed, with the first page's content when it was the first.
	if err := b.api.EditMessage(ctx, cb.ChatID, cb.MessageID, pages[0], kbs[0]); err != nil && !IsNotModified(err) {
		b.logger.Warn("unable to refresh the rule list", "err", err)
	}
}

func (b *Bot) handleMessage(ctx context.Context, msg *Message) {
	chat := b.engine.Chat()
	if chat == 0 {
		b.handleUnpaired(ctx, msg)
		return
	}
	if msg.ChatID != chat {
		b.logger.Debug("ignored a message from another chat", "chat", msg.ChatID, "user", msg.From.ID)
		return
	}
	if msg.Command == "" {
		return
	}
	if !b.isAllowed(msg.From.ID) {
		b.logger.Warn("refused a command from a user not allowed", "user", msg.From.ID, "command", msg.Command)
		b.reply(ctx, "Sorry, you are not allowed to give doorman commands.", nil)
		return
	}
	switch msg.Command {
	case "list":
		b.cmdList(ctx)
	case "trusted":
		b.cmdRules(ctx, storage.RuleTrust)
	case "blocked":
		b.cmdRules(ctx, storage.RuleBlock)
	case "status":
		b.cmdStatus(ctx)
	case "digest":
		b.cmdDigest(ctx)
	case "unpair":
		b.cmdUnpair(ctx)
	case "help", "start":
		b.reply(ctx, helpText, nil)
	default:
		b.reply(ctx, "Unknown command. Try /help.", nil)
	}
}

const helpText = `🚪 <b>Doorman</b> watches the port shares on your router: the doors into your network that devices open by themselves with UPnP or NAT-PMP.

For every new share you get a message with two buttons:
✅ <b>Allow</b>: doorman trusts this service on this device and stays quiet when it opens again.
⛔ <b>Block</b>: doorman closes the share on the router, and closes it again whenever the device reopens it.

/list – current port shares and their state
/trusted – services you allowed (forget one to be asked again)
/blocked – services you blocked (forget one to let it open again)
/status – the router, events, last check, messages waiting
/digest – the shares worth closing (also sent every week)
/unpair – stop sending alerts to this chat
/help – this text`

func (b *Bot) reply(ctx context.Context, text string, kb Keyboard) {
	if _, err := b.api.SendMessage(ctx, Outgoing{ChatID: b.engine.Chat(), HTML: text, Keyboard: kb}); err != nil {
		b.logger.Warn("unable to answer a command", "err", err)
	}
}

func (b *Bot) cmdList(ctx context.Context) {
	shares, err := b.engine.OpenShares(ctx)
	if err != nil {
		b.logger.Error("unable to read the shares", "err", err)
		b.reply(ctx, "Doorman could not read its database.", nil)
		return
	}
	if len(shares) == 0 {
		b.reply(ctx, "No port shares are open on the router.", nil)
		return
	}
	sort.SliceStable(shares, func(i, j int) bool {
		if shares[i].Mapping.Router != shares[j].Mapping.Router {
			return shares[i].Mapping.Router < shares[j].Mapping.Router
		}
		return shares[i].Mapping.ExternalPort < shares[j].Mapping.ExternalPort
	})
	var ips []string
	for _, s := range shares {
		ips = append(ips, s.Mapping.InternalClient)
	}
	v := view{loc: b.loc, now: b.now(), devices: lookupDevices(ctx, b.devices, ips)}
	var lines []string
	for _, s := range shares {
		state := "❔ not decided"
		switch {
		case s.Rule == storage.RuleBlock:
			state = "⛔ blocked (being closed)"
		case s.Rule != "":
			state = "✅ trusted"
		case s.Waiting:
			state = "❔ waiting for your answer"
		}
		lines = append(lines, fmt.Sprintf("• %s\n   %s · first seen %s · last seen %s", shareLine(s.Mapping, v), state, formatWhen(s.FirstSeen, b.loc), formatWhen(s.LastSeen, b.loc)))
	}
	header := fmt.Sprintf("<b>%d port shares open</b>", len(shares))
	for _, page := range splitMessages(header, lines) {
		b.reply(ctx, page, nil)
	}
}

// rulesPerMessage keeps a rule list's keyboard small enough for a phone.
const rulesPerMessage = 20

func (b *Bot) renderRules(ctx context.Context, kind storage.RuleKind) ([]string, []Keyboard, error) {
	rules, err := b.engine.Rules(ctx, kind)
	if err != nil {
		return nil, nil, err
	}
	title := "✅ <b>Trusted services</b>"
	empty := "No trusted services. Press Allow on an alert to trust one."
	if kind == storage.RuleBlock {
		title = "⛔ <b>Blocked services</b>"
		empty = "No blocked services. Press Block on an alert to block one."
	}
	if len(rules) == 0 {
		return []string{empty}, []Keyboard{nil}, nil
	}
	var pages []string
	var kbs []Keyboard
	var sb strings.Builder
	var kb Keyboard
	flush := func() {
		pages, kbs = append(pages, sb.String()), append(kbs, kb)
		sb.Reset()
		kb = nil
	}
	for i, r := range rules {
		n := i + 1
		var e strings.Builder
		fmt.Fprintf(&e, "\n\n%d. <b>%s</b>", n, esc(r.Service.InternalClient, 40))
		if r.Scope == storage.ScopeDevice {
			e.WriteString(" · everything it opens")
		} else if r.Scope == storage.ScopePort || r.Kind == storage.RuleBlock {
			// What the rule covers: the device's inside port, any protocol.
			fmt.Fprintf(&e, " port %d, any protocol", r.Service.InternalPort)
			if app, ok := namedApp(r.Example); ok {
				fmt.Fprintf(&e, " · %s", esc(app.Name, 40))
			}
			if d := r.Example.Description; d != "" {
				fmt.Fprintf(&e, " · “%s”", esc(d, 60))
			}
		} else {
			fmt.Fprintf(&e, " %s port %d", r.Service.Protocol, r.Service.InternalPort)
			if d := r.Example.Description; d != "" {
				fmt.Fprintf(&e, " · “%s”", esc(d, 60))
			}
		}
		if r.MAC != "" {
			fmt.Fprintf(&e, " · %s", esc(r.MAC, 17))
		}
		fmt.Fprintf(&e, "\n   by %s, %s", esc(r.CreatedBy.Name, 40), formatWhen(r.CreatedAt, b.loc))
		if !r.LastMatched.IsZero() {
			fmt.Fprintf(&e, " · last seen %s", formatWhen(r.LastMatched, b.loc))
		}
		// A page ends at 20 rules (a phone's keyboard) or before
		// Telegram's length limit, whichever comes first.
		if len(kb) == rulesPerMessage || (sb.Len() > 0 && sb.Len()+e.Len() > batchBudget) {
			flush()
		}
		if sb.Len() == 0 {
			sb.WriteString(title)
		}
		sb.WriteString(e.String())
		kb = append(kb, []Button{{Text: fmt.Sprintf("🗑 Forget %d", n), Data: callbackData(verbForget, r.ID)}})
	}
	flush()
	return pages, kbs, nil
}

func (b *Bot) cmdRules(ctx context.Context, kind storage.RuleKind) {
	pages, kbs, err := b.renderRules(ctx, kind)
	if err != nil {
		b.logger.Error("unable to read the rules", "err", err)
		b.reply(ctx, "Doorman could not read its database.", nil)
		return
	}
	for i := range pages {
		b.reply(ctx, pages[i], kbs[i])
	}
}

func (b *Bot) cmdStatus(ctx context.Context) {
	var sb strings.Builder
	sb.WriteString("📡 <b>Status</b>")
	now := b.now()
	st := b.status()
	if len(st) == 0 {
		sb.WriteString("\n\nNo router found yet. Doorman keeps looking; see its log.")
	}
	for _, s := range st {
		fmt.Fprintf(&sb, "\n\n<b>Router %s</b> (%s)", esc(watcher.RouterHost(s.Router), 64), esc(watcher.ShortServiceType(s.Service), 64))
		if s.Events {
			sb.WriteString("\nEvents: on")
		} else {
			sb.WriteString("\nEvents: off, polling")
			if s.EventsError != "" {
				fmt.Fprintf(&sb, " (%s)", esc(s.EventsError, 200))
			}
		}
		if s.LastList.IsZero() {
			sb.WriteString("\nLast check: not yet")
		} else {
			fmt.Fprintf(&sb, "\nLast check: %s (%s ago)", formatWhen(s.LastList, b.loc), formatDuration(now.Sub(s.LastList)))
		}
		if s.LastError != "" {
			fmt.Fprintf(&sb, "\nLast error: %s", esc(s.LastError, 200))
		}
	}
	if open, rules, err := b.engine.Counts(ctx); err != nil {
		b.logger.Error("unable to count the shares", "err", err)
		sb.WriteString("\n\nDoorman could not read its database.")
	} else {
		fmt.Fprintf(&sb, "\n\nOpen shares: %d · rules: %d · messages waiting: %d", open, rules, b.outbox.Len())
	}
	if lastOK, lastErr := b.outbox.Health(); lastErr != nil {
		fmt.Fprintf(&sb, "\nLast delivery problem: %s", html.EscapeString(lastErr.Error()))
		if !lastOK.IsZero() {
			fmt.Fprintf(&sb, " (last success %s)", formatWhen(lastOK, b.loc))
		}
	}
	b.reply(ctx, sb.String(), nil)
}
