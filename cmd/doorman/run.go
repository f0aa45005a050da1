package main

import (
	"context"
	// A minimal container has no zoneinfo; DOORMAN_TZ must still work.
	"errors"
	"fmt"
	"log/slog"
	"sync"
	_ "time/tzdata"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/bot"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

func runRun(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("run", "run [flags]", e)
	load := configFlags(fs)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	cfg, err := load(e.getenv)
	if err != nil {
		printError(e.stderr, err)
		return exitUsage
	}
	var missing []string
	if cfg.TelegramToken == "" {
		missing = append(missing, "DOORMAN_TELEGRAM_TOKEN (or DOORMAN_TELEGRAM_TOKEN_FILE)")
	}
	if cfg.ChatID == 0 {
		missing = append(missing, "DOORMAN_TELEGRAM_CHAT_ID")
	}
	if len(missing) > 0 {
		printError(e.stderr, fmt.Errorf("doorman run needs %s; see doorman run --help and the README's quick start", joinAnd(missing)))
		return exitUsage
	}
	logger := newLogger(cfg, e.stderr)
	if err := daemon(ctx, cfg, logger); err != nil {
		printError(e.stderr, err)
		return 1
	}
	return 0
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return fmt.Sprintf("%s and %s", s[0], s[1])
}

// daemon runs the watcher and the bot until ctx is done.
func daemon(ctx context.Context, cfg config, logger *slog.Logger) error {
	db, err := storage.Open(ctx, cfg.DBPath, storage.Options{})
	if err != nil {
		return err
	}
	defer db.Close()

	api, err := bot.NewTelegramAPI(bot.TelegramConfig{Token: cfg.TelegramToken, BaseURL: cfg.TelegramAPIURL, Logger: logger})
	if err != nil {
		return err
	}
	outbox := bot.NewOutbox(bot.OutboxConfig{API: api, DB: db, Logger: logger, Location: cfg.Location, StaleAfter: cfg.StaleAfter})

	client := watcher.New(watcher.Config{
		IGDURLs:          cfg.IGDURLs,
		RequestTimeout:   cfg.RouterTimeout,
		DiscoveryTimeout: cfg.DiscoveryTimeout,
		Logger:           logger,
	})
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
			_, err := engine.HandleListing(ctx, approvals.Listing{
				Router:          s.Gateway.URL,
				Service:         s.Service.Type,
				Mappings:        s.Mappings,
				Complete:        s.Complete,
				RouterRestarted: s.Reason == "router-restart",
			})
			if err != nil {
				logger.Error("unable to process a listing", "router", s.Gateway.URL, "err", err)
			}
		},
	})
	engine, err = approvals.New(approvals.Config{DB: db, Router: w, ChatID: cfg.ChatID, Wake: outbox.Wake, StaleAfter: cfg.StaleAfter, Logger: logger})
	if err != nil {
		return err
	}
	digests, err := approvals.NewDigestScheduler(engine, cfg.DigestSchedule, cfg.Location, cfg.DigestSkipEmpty, logger)
	if err != nil {
		return err
	}
	b, err := bot.New(bot.Config{
		API: api, DB: db, Engine: engine, Outbox: outbox, ChatID: cfg.ChatID,
		AllowedUsers: cfg.AllowedUsers, Status: w.Status, Location: cfg.Location, Logger: logger,
	})
	if err != nil {
		return err
	}

	logger.Info("doorman starting", "version", version, "db", cfg.DBPath, "chat", cfg.ChatID, "events", cfg.Events)
	go func() {
		me, err := api.GetMe(ctx)
		switch {
		case err == nil:
			logger.Info("connected to Telegram", "bot", "@"+me.Username)
		case ctx.Err() == nil:
			logger.Error("Telegram does not accept the bot yet; alerts wait in the outbox", "err", err)
		}
	}()

	// One part failing for good (a callback address the watcher cannot
	// use, say) stops the others: a doorman that looks alive but watches
	// nothing is worse than one that exits with the reason.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, part := range []func(context.Context) error{w.Run, b.Run, digests.Run} {
		wg.Go(func() {
			errs[i] = part(ctx)
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
