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
	ShowPairingCode func(PairingCode)
	// AllowedUsers may press buttons and give commands; empty means
	// anyone in the owner chat.
	AllowedUsers []int64
	// Devices, when set, names the devices in /list.
	Devices Devices
	// Audience gives the chat's language and topic (default English, the
	// main thread); share it with the Outbox.
	Audience *Audience
	// QuietHours are shown in /status.
	QuietHours QuietHours
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
	audience  *Audience
	quiet     QuietHours
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
		loc: cfg.Location, logger: cfg.Logger, now: cfg.Now, audience: cfg.Audience, quiet: cfg.QuietHours,
	}
	b.pair.show = cfg.ShowPairingCode
	if cfg.Outbox.owner == nil {
		cfg.Outbox.owner = cfg.Engine
	}
	switch {
	case cfg.ChatID != 0:
		chat, moved, err := FollowChat(cfg.DB, cfg.ChatID)
		if err != nil {
			return nil, err
		}
		if moved && cfg.Logger != nil {
			cfg.Logger.Warn("DOORMAN_TELEGRAM_CHAT_ID names a group that became a supergroup; writing to the supergroup", "set_chat", cfg.ChatID, "chat", chat)
		}
		cfg.Engine.SetChat(chat)
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
	if b.audience == nil {
		// One audience for the bot and its outbox: what pairing learns
		// about the chat must reach the messages the outbox sends.
		b.audience = cfg.Outbox.audience
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.status == nil {
		b.status = func() []watcher.ServiceStatus { return nil }
	}
	return b, nil
}

// commandMenu is what setMyCommands registers, in one language, and what
// /help explains.
func commandMenu(w Words) []Command {
	return []Command{
		{"list", w.T("CmdList")},
		{"trusted", w.T("CmdTrusted")},
		{"blocked", w.T("CmdBlocked")},
		{"status", w.T("CmdStatus")},
		{"digest", w.T("CmdDigest")},
		{"unpair", w.T("CmdUnpair")},
		{"help", w.T("CmdHelp")},
	}
}

// words returns the texts of the owner chat.
func (b *Bot) words() Words { return b.audience.Words(b.engine.Chat()) }

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

// registerCommands registers the command menu once per language: English
// for everybody, and each other language for the people whose Telegram is
// set to it. With DOORMAN_LANG the menu for everybody is in that language.
func (b *Bot) registerCommands(ctx context.Context) {
	for _, l := range langs() {
		code := string(l)
		if l == English {
			code = ""
		}
		w := b.audience.catalog.In(l)
		if code == "" && b.audience.lang != "" {
			w = b.audience.catalog.In(b.audience.lang)
		}
		if !b.registerMenu(ctx, code, commandMenu(w)) {
			return
		}
	}
}

// registerMenu registers one menu, retrying while Telegram is unavailable;
// it returns false when doorman stops or Telegram refuses for good.
func (b *Bot) registerMenu(ctx context.Context, lang string, menu []Command) bool {
	for n := 1; ; n++ {
		err := b.api.SetCommands(ctx, lang, menu)
		if err == nil {
			return true
		}
		if ctx.Err() != nil || !IsRetryable(err) {
			if ctx.Err() == nil {
				b.logger.Warn("unable to register the command menu", "lang", lang, "err", err)
			}
			return false
		}
		wait := max(RetryAfterOf(err), backoff(time.Second, time.Minute, n))
		if pollSleep(ctx, wait) != nil {
			return false
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
	w := b.words()
	switch {
	case cb.ChatID != b.engine.Chat():
		log.Warn("refused a button press from another chat")
		b.answer(ctx, cb, b.audience.WordsFor(cb.From).T("PressOtherChat"))
		return
	case !b.isAllowed(cb.From.ID):
		log.Warn("refused a button press from a user not allowed to decide")
		b.answer(ctx, cb, w.T("PressNotAllowed"))
		return
	}
	if isDigestVerb(cb.Data) {
		b.handleDigestPress(ctx, cb, storage.User{ID: cb.From.ID, Name: cb.From.Display()})
		return
	}
	verb, id, ok := parseCallbackData(cb.Data)
	if !ok {
		log.Warn("refused a button press doorman does not know")
		b.answer(ctx, cb, w.T("PressUnknown"))
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
		b.answer(ctx, cb, w.T("PressUnknownShare"))
		return
	case err != nil:
		log.Error("unable to read an alert", "err", err)
		b.answer(ctx, cb, w.T("PressDatabase"))
		return
	case a.ChatID != cb.ChatID || (a.MessageID != 0 && a.MessageID != cb.MessageID):
		// MessageID is 0 for the moment between Telegram's answer to
		// sendMessage and the outbox recording it; a fast tap lands there.
		log.Warn("refused a press naming an alert of another message", "alert", id)
		b.answer(ctx, cb, w.T("PressOtherMessage"))
		return
	case a.State != storage.AlertPending:
		b.answer(ctx, cb, alreadyDecided(w, a))
		return
	}
	m := a.Share.Mapping
	d := approvals.Allow
	text := w.T("PressAllowing", "Protocol", m.Protocol, "Port", m.ExternalPort)
	switch verb {
	case verbBlock:
		d = approvals.Block
		text = w.T("PressClosing", "Protocol", m.Protocol, "Port", m.ExternalPort)
	case verbAllowDevice:
		d = approvals.AllowDevice
		text = w.T("PressTrustingDevice", "Device", m.InternalClient)
	case verbBlockDevice:
		d = approvals.BlockDevice
		text = w.T("PressClosingDevice", "Device", m.InternalClient)
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

func alreadyDecided(w Words, a storage.Alert) string {
	switch a.State {
	case storage.AlertAllowed:
		return w.T("PressAlreadyAllowed", "Name", a.DecidedBy.Name)
	case storage.AlertBlocked:
		return w.T("PressAlreadyBlocked", "Name", a.DecidedBy.Name)
	}
	return w.T("PressNoLongerApplies")
}

func (b *Bot) forget(ctx context.Context, cb *Callback, id uint64) {
	w := b.words()
	r, err := b.engine.ForgetRule(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		b.answer(ctx, cb, w.T("ForgetGone"))
		return
	}
	if err != nil {
		b.logger.Error("unable to forget a rule", "rule", id, "err", err)
		b.answer(ctx, cb, w.T("ForgetFailed"))
		return
	}
	b.answer(ctx, cb, w.T("Forgotten"))
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
		b.reply(ctx, b.words().T("CommandNotAllowed"), nil)
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
		b.reply(ctx, b.words().T("Help"), nil)
	default:
		b.reply(ctx, b.words().T("CommandUnknown"), nil)
	}
}

// reply answers a command in the owner chat. Answers do not ring: the
// person who asked is looking at the chat.
func (b *Bot) reply(ctx context.Context, text string, kb Keyboard) {
	chat := b.engine.Chat()
	if _, err := b.api.SendMessage(ctx, Outgoing{ChatID: chat, ThreadID: b.audience.Thread(chat), HTML: text, Keyboard: kb, Silent: true}); err != nil {
		b.logger.Warn("unable to answer a command", "err", err)
	}
}

func (b *Bot) cmdList(ctx context.Context) {
	w := b.words()
	shares, err := b.engine.OpenShares(ctx)
	if err != nil {
		b.logger.Error("unable to read the shares", "err", err)
		b.reply(ctx, w.T("DatabaseUnreadable"), nil)
		return
	}
	if len(shares) == 0 {
		b.reply(ctx, w.T("ListEmpty"), nil)
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
	v := view{loc: b.loc, now: b.now(), devices: lookupDevices(ctx, b.devices, ips), words: w}
	var lines []string
	for _, s := range shares {
		state := w.T("ListUndecided")
		switch {
		case s.Rule == storage.RuleBlock:
			state = w.T("ListBlocked")
		case s.Rule != "":
			state = w.T("ListTrusted")
		case s.Waiting:
			state = w.T("ListWaiting")
		}
		lines = append(lines, w.T("ListLine", "Share", shareLine(s.Mapping, v), "State", state, "FirstSeen", w.when(s.FirstSeen, b.loc), "LastSeen", w.when(s.LastSeen, b.loc)))
	}
	header := w.N("ListHeader", len(shares))
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
	w := b.words()
	title, empty := w.T("TrustedTitle"), w.T("TrustedEmpty")
	if kind == storage.RuleBlock {
		title, empty = w.T("BlockedTitle"), w.T("BlockedEmpty")
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
			e.WriteString(w.T("RuleWholeDevice"))
		} else if r.Scope == storage.ScopePort || r.Kind == storage.RuleBlock {
			// What the rule covers: the device's inside port, any protocol.
			e.WriteString(w.T("RuleInsidePort", "Port", r.Service.InternalPort))
			if app, ok := namedApp(r.Example); ok {
				fmt.Fprintf(&e, " · %s", esc(app.Name, 40))
			}
			if d := r.Example.Description; d != "" {
				fmt.Fprintf(&e, " · “%s”", esc(d, 60))
			}
		} else {
			e.WriteString(w.T("RulePort", "Protocol", r.Service.Protocol, "Port", r.Service.InternalPort))
			if d := r.Example.Description; d != "" {
				fmt.Fprintf(&e, " · “%s”", esc(d, 60))
			}
		}
		if r.MAC != "" {
			fmt.Fprintf(&e, " · %s", esc(r.MAC, 17))
		}
		e.WriteString(w.T("RuleBy", "Name", esc(r.CreatedBy.Name, 40), "When", w.when(r.CreatedAt, b.loc)))
		if !r.LastMatched.IsZero() {
			e.WriteString(w.T("RuleLastSeen", "When", w.when(r.LastMatched, b.loc)))
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
		kb = append(kb, []Button{{Text: w.T("ButtonForget", "N", n), Data: callbackData(verbForget, r.ID)}})
	}
	flush()
	return pages, kbs, nil
}

func (b *Bot) cmdRules(ctx context.Context, kind storage.RuleKind) {
	pages, kbs, err := b.renderRules(ctx, kind)
	if err != nil {
		b.logger.Error("unable to read the rules", "err", err)
		b.reply(ctx, b.words().T("DatabaseUnreadable"), nil)
		return
	}
	for i := range pages {
		b.reply(ctx, pages[i], kbs[i])
	}
}

func (b *Bot) cmdStatus(ctx context.Context) {
	w := b.words()
	var sb strings.Builder
	sb.WriteString(w.T("StatusTitle"))
	now := b.now()
	st := b.status()
	if len(st) == 0 {
		sb.WriteString(w.T("StatusNoRouter"))
	}
	for _, s := range st {
		sb.WriteString(w.T("StatusRouter", "Router", esc(watcher.RouterHost(s.Router), 64), "Service", esc(watcher.ShortServiceType(s.Service), 64)))
		switch {
		case s.Events:
			sb.WriteString(w.T("StatusEventsOn"))
		case s.EventsError != "":
			sb.WriteString(w.T("StatusEventsOffBecause", "Why", esc(s.EventsError, 200)))
		default:
			sb.WriteString(w.T("StatusEventsOff"))
		}
		if s.LastList.IsZero() {
			sb.WriteString(w.T("StatusNotChecked"))
		} else {
			sb.WriteString(w.T("StatusLastCheck", "When", w.when(s.LastList, b.loc), "Ago", w.duration(now.Sub(s.LastList))))
		}
		if s.LastError != "" {
			sb.WriteString(w.T("StatusLastError", "Error", esc(s.LastError, 200)))
		}
	}
	if open, rules, err := b.engine.Counts(ctx); err != nil {
		b.logger.Error("unable to count the shares", "err", err)
		sb.WriteString("\n\n" + w.T("DatabaseUnreadable"))
	} else {
		sb.WriteString(w.T("StatusCounts", "Open", open, "Rules", rules, "Waiting", b.outbox.Len()))
	}
	if lastOK, lastErr := b.outbox.Health(); lastErr != nil {
		sb.WriteString(w.T("StatusDeliveryProblem", "Error", html.EscapeString(lastErr.Error())))
		if !lastOK.IsZero() {
			sb.WriteString(w.T("StatusLastSuccess", "When", w.when(lastOK, b.loc)))
		}
	}
	switch {
	case !b.quiet.On():
	case b.quiet.Contains(now.In(b.loc)):
		sb.WriteString(w.T("StatusQuietNow", "Span", b.quiet.String()))
	default:
		sb.WriteString(w.T("StatusQuietLater", "Span", b.quiet.String()))
	}
	b.reply(ctx, sb.String(), nil)
}
