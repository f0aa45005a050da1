package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	// A minimal container has no zoneinfo; DOORMAN_TZ must still work.
	_ "time/tzdata"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/bot"
	"github.com/doorman-upnp/doorman/identify"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

func runRun(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("run", "run [flags]", e)
	cfg, code, ok := loadCommandConfig(fs, args, e)
	if !ok {
		return code
	}
	logger := newLogger(cfg, e.stderr)
	if err := daemon(ctx, cfg, logger, e); err != nil {
		printError(e.stderr, asDamaged(cfg.DBPath, err))
		return 1
	}
	return 0
}

// runWatch is run's terminal mode with a throw-away database: a quick look
// that leaves nothing behind and enforces no rules.
func runWatch(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("watch", "watch [flags]", e)
	cfg, code, ok := loadCommandConfig(fs, args, e)
	if !ok {
		return code
	}
	dir, err := os.MkdirTemp("", "doorman-watch-")
	if err != nil {
		printError(e.stderr, fmt.Errorf("unable to make a temporary directory: %w", err))
		return 1
	}
	defer os.RemoveAll(dir)
	cfg.DBPath = dir + "/watch.db"
	cfg.TelegramToken = ""
	// A quick look must not take the metrics port of a running doorman.
	cfg.MetricsAddr = ""
	logger := newLogger(cfg, e.stderr)
	if err := daemon(ctx, cfg, logger, e); err != nil {
		printError(e.stderr, err)
		return 1
	}
	return 0
}

// daemon watches the router until ctx is done. With a bot token it asks in
// Telegram (pairing a chat first when none is configured); without one it
// prints what happens to the terminal.
func daemon(ctx context.Context, cfg config, logger *slog.Logger, e env) error {
	db, err := storage.Open(ctx, cfg.DBPath, storage.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer db.Close()
	// storage says once that changes are not saved; the rest of doorman
	// says so at debug level only.
	logger = slog.New(newQuietUnwritable(logger.Handler()))
	terminal := cfg.TelegramToken == ""

	client := watcher.New(watcher.Config{
		IGDURLs:          cfg.IGDURLs,
		RequestTimeout:   cfg.RouterTimeout,
		DiscoveryTimeout: cfg.DiscoveryTimeout,
		Logger:           logger,
	})
	devices := identify.New(identify.Config{Logger: logger})
	presence := approvals.NewPresenceTracker(db, devices.Present, nil, logger)
	// The engine needs the watcher to delete, and the watcher hands its
	// listings to the engine: the callback closes over the variable.
	var engine *approvals.Engine
	w := client.NewWatcher(watcher.WatchConfig{
		PollInterval:       cfg.PollInterval,
		SafetyPollInterval: cfg.SafetyPoll,
		DisableEvents:      !cfg.Events,
		CallbackAddr:       cfg.CallbackAddr,
		OnSnapshot: func(ctx context.Context, s watcher.Snapshot) {
			if s.Gateway == nil || s.Service == nil {
				return
			}
			defer logPanic(logger, "handling a listing")
			var ips []string
			for _, m := range s.Mappings {
				ips = append(ips, m.InternalClient)
			}
			presence.Sample(ctx, ips)
			_, err := engine.HandleListing(ctx, approvals.Listing{
				Router:          s.Gateway.ID,
				RouterUDNs:      s.Gateway.UDNs(),
				Service:         s.Service.Type,
				ServiceTwins:    s.Service.Twins,
				Mappings:        s.Mappings,
				Complete:        s.Complete,
				RouterRestarted: s.Reason == watcher.ReasonRouterRestart,
			})
			if err != nil {
				logger.Error("unable to process a listing", "router", s.Gateway.ID, "url", s.Gateway.URL, "err", err)
			}
		},
	})
	parts := []func(context.Context) error{w.Run, stopOnDamage(db)}

	engineCfg := approvals.Config{DB: db, Router: w, StaleAfter: cfg.StaleAfter, Gather: approvals.DefaultGather, BusyDevice: cfg.BusyDevice, AppName: appName, MACOf: devices.KnownMAC, Presence: presence, Logger: logger}
	if terminal {
		t := newTerminal(e.stdout, cfg.Location)
		engineCfg.Observe = t.print
		engine, err = approvals.New(engineCfg)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stderr, "doorman: watching without Telegram; shares are printed here. To get alerts with Allow and Block buttons, create a bot with @BotFather and run doorman with DOORMAN_TELEGRAM_TOKEN set (see the README).")
		logger.Info("doorman starting in the terminal", "version", version, "db", cfg.DBPath, "events", cfg.Events)
		return runParts(ctx, logger, withMetrics(parts, cfg, logger, monitored{db: db, client: client, watcher: w}))
	}

	api, err := bot.NewTelegramAPI(bot.TelegramConfig{Token: cfg.TelegramToken, BaseURL: cfg.TelegramAPIURL, Logger: logger})
	if err != nil {
		return err
	}
	chat := cfg.ChatID
	if chat == 0 {
		if chat, err = bot.LoadOwnerChat(db); err != nil {
			return err
		}
	}
	audience, err := bot.NewAudience(bot.AudienceConfig{DB: db, Lang: cfg.Lang, TopicID: cfg.TopicID})
	if err != nil {
		return err
	}
	outbox := bot.NewOutbox(bot.OutboxConfig{API: api, DB: db, Logger: logger, Location: cfg.Location, StaleAfter: cfg.StaleAfter, Devices: devices,
		Audience: audience, QuietHours: cfg.QuietHours})
	engineCfg.ChatID, engineCfg.Wake = chat, outbox.Wake
	engineCfg.DigestPager = bot.NewDigestPager(audience, cfg.StaleAfter, cfg.Location)
	if engine, err = approvals.New(engineCfg); err != nil {
		return err
	}
	digests, err := approvals.NewDigestScheduler(engine, cfg.DigestSchedule, cfg.Location, cfg.DigestSkipEmpty, logger)
	if err != nil {
		return err
	}
	b, err := bot.New(bot.Config{
		API: api, DB: db, Engine: engine, Outbox: outbox, ChatID: cfg.ChatID,
		AllowedUsers: cfg.AllowedUsers, Status: w.Status, Location: cfg.Location, Logger: logger, Devices: devices,
		ShowPairingCode: pairingPrinter(e.stderr, cfg.Location),
		Audience:        audience, QuietHours: cfg.QuietHours,
	})
	if err != nil {
		return err
	}
	logger.Info("doorman starting", "version", version, "db", cfg.DBPath, "chat", chat, "events", cfg.Events)
	if err := b.StartPairing(ctx); err != nil {
		return err
	}
	if chat != 0 {
		// Shares recorded while no chat was set (doorman ran in the
		// terminal, or stopped between pairing and the report) are asked
		// about now, once.
		if n, err := engine.ReportUnasked(ctx); err != nil {
			logger.Error("unable to report the shares nobody was asked about", "err", err)
		} else if n > 0 {
			logger.Info("asking about shares seen while no chat was set", "shares", n)
		}
	}
	go func() {
		me, err := api.GetMe(ctx)
		switch {
		case err == nil:
			logger.Info("connected to Telegram", "bot", "@"+me.Username)
		case ctx.Err() == nil:
			logger.Error("Telegram does not accept the bot yet; alerts wait in the outbox", "err", err)
		}
	}()
	parts = append(parts, b.Run, digests.Run)
	return runParts(ctx, logger, withMetrics(parts, cfg, logger, monitored{db: db, client: client, watcher: w, api: api, outbox: outbox}))
}

// stopOnDamage stops doorman when a transaction finds the database
// damaged: every later one may fail the same way, and the owner needs the
// message with the way out.
func stopOnDamage(db *storage.DB) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-db.Damaged():
			return asDamaged(db.Path(), db.DamageErr())
		case <-ctx.Done():
			return nil
		}
	}
}

// pairingPrinter shows a pairing code on doorman's terminal (standard
// error, where its log goes), and nowhere else: the code, the link that pairs
// with a tap, and, in an interactive terminal, the link as a QR code for a
// phone's camera.
func pairingPrinter(w io.Writer, loc *time.Location) func(bot.PairingCode) {
	return func(p bot.PairingCode) {
		until := p.Expires.In(loc).Format("15:04")
		if p.Link == "" {
			fmt.Fprintf(w, "doorman: pairing code %s: send \"/start %s\" to your bot in Telegram before %s; that chat then gets the alerts.\n",
				p.Code, p.Code, until)
			return
		}
		fmt.Fprintf(w, "doorman: pairing code %s: open %s on your phone, or send \"/start %s\" to your bot in Telegram, before %s; that chat then gets the alerts. In a group, send it there.\n",
			p.Code, p.Link, p.Code, until)
		if isTerminal(w) {
			drawQR(w, p.Link)
		}
	}
}

// runParts runs the parts of doorman until ctx is done. One part failing for
// good (a callback address the watcher cannot use, say) stops the others: a
// doorman that looks alive but watches nothing is worse than one that exits
// with the reason.
func runParts(ctx context.Context, logger *slog.Logger, parts []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, part := range parts {
		wg.Go(func() {
			errs[i] = recoverPart(logger, part)(ctx)
			cancel()
		})
	}
	wg.Wait()
	logger.Info("doorman stopped")
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

// appName names the app identify's table finds from a share's description
// or port, for approvals; a guess from the protocol alone ("opened with
// PCP") names no app.
func appName(m watcher.Mapping) string {
	app, ok := identify.AppOf(m)
	if !ok || app.Basis == identify.ByOrigin {
		return ""
	}
	return app.Name
}
