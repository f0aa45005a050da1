// Package metrics serves doorman's Prometheus metrics at /metrics and its
// health at /healthz.
//
// Nothing is counted as it happens: a Collector reads doorman's state from
// Sources at every scrape (the watcher's status, the database, the outbox),
// so the numbers are the ones /status and /list show, they survive a restart
// where the database keeps them, and no part of doorman has to call into this
// package.
package metrics

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// Share states, the values of the state label of doorman_port_shares.
const (
	ShareTrusted   = "trusted"   // a trust rule covers it
	ShareBlocked   = "blocked"   // a block rule covers it (being closed)
	SharePending   = "pending"   // asked in the chat, no answer yet
	ShareUndecided = "undecided" // nobody was asked (no Telegram, or not yet)
)

// ShareStates are the share states in the order they are reported.
var shareStates = [...]string{ShareTrusted, ShareBlocked, SharePending, ShareUndecided}

// Sources is where the collector and the health check read doorman's state,
// at every scrape and every health check. A nil func is left out.
type Sources struct {
	// Services says how each router service is watched
	// (watcher.Watcher.Status).
	Services func() []watcher.ServiceStatus
	// State reads shares, alerts, rules and the outbox from the database;
	// see ReadState.
	State func() (State, error)
	// RouterErrors returns the failed requests to the routers so far
	// (watcher.Client.RequestErrors).
	RouterErrors func() map[watcher.RequestErrorKey]uint64
	// Telegram says how Telegram answers; nil when doorman runs without it
	// (terminal mode), and then only the router counts for health.
	Telegram func() Telegram
	// WriteFault says whether changes to the database fail to be saved
	// (storage.DB.WriteFault): a full disk, a read-only file system.
	WriteFault func() *storage.WriteFault
}

// ShareKey is a router and a share state.
type ShareKey struct {
	Router string
	State  string // ShareTrusted, ShareBlocked, SharePending, ShareUndecided
}

// State is what the database says.
type State struct {
	// Shares counts the open shares by router and state.
	Shares map[ShareKey]int
	// AlertsSent counts the alerts Telegram confirmed, ever.
	AlertsSent int
	// Decisions counts the alerts answered with Allow and with Block, by
	// storage.AlertAllowed and storage.AlertBlocked.
	Decisions map[storage.AlertState]int
	// Rules counts the rules by kind.
	Rules map[storage.RuleKind]int
	// Queued is the number of messages waiting for Telegram, and
	// OldestQueued when the oldest of them was queued.
	Queued       int
	OldestQueued time.Time
}

// Telegram is how Telegram answers doorman.
type Telegram struct {
	// LastOK is when Telegram last answered a call: a delivery, or a check
	// of the token while there was nothing to deliver.
	LastOK time.Time
	// LastError is the last failure since then, "" if none.
	LastError string
	// TokenRejected is set when Telegram answered 401 to the bot token.
	TokenRejected bool
}

// ReadState reads State from db in one read transaction.
func ReadState(db *storage.DB) (State, error) {
	st := State{
		Shares:    map[ShareKey]int{},
		Decisions: map[storage.AlertState]int{},
		Rules:     map[storage.RuleKind]int{},
	}
	err := db.View(func(tx *storage.Tx) error {
		shares, err := tx.Shares("")
		if err != nil {
			return err
		}
		for _, s := range shares {
			if s.Gone() {
				continue
			}
			state := ShareUndecided
			r, ok, err := tx.RuleFor(storage.ServiceOf(s.Mapping), "")
			switch {
			case err != nil:
				return err
			case ok && r.Kind == storage.RuleBlock:
				state = ShareBlocked
			case ok:
				state = ShareTrusted
			case s.AlertID != 0:
				a, err := tx.Alert(s.AlertID)
				if err == nil && a.State == storage.AlertPending {
					state = SharePending
				}
			}
			st.Shares[ShareKey{s.Mapping.Router, state}]++
		}
		alerts, err := tx.Alerts()
		if err != nil {
			return err
		}
		// What pruning deleted still counts.
		pruned, err := tx.PrunedAlerts()
		if err != nil {
			return err
		}
		st.AlertsSent += pruned.Sent
		for state, n := range pruned.Decisions {
			st.Decisions[state] += n
		}
		for _, a := range alerts {
			if a.MessageID != 0 {
				st.AlertsSent++
			}
			if a.State == storage.AlertAllowed || a.State == storage.AlertBlocked {
				st.Decisions[a.State]++
			}
		}
		rules, err := tx.Rules()
		if err != nil {
			return err
		}
		for _, r := range rules {
			st.Rules[r.Kind]++
		}
		_, _, _, st.Queued = tx.Count()
		if it, ok, err := tx.NextOutbox(); err != nil {
			return err
		} else if ok {
			st.OldestQueued = it.CreatedAt
		}
		return nil
	})
	return st, err
}

// collector is a prometheus.Collector over Sources.
type collector struct {
	src     Sources
	health  HealthConfig
	version string
	now     func() time.Time

	shares, alertsSent, queued, decisions, rules        *prometheus.Desc
	routerErrors, eventsSubscribed, lastList, listError *prometheus.Desc
	telegramOK, healthy, info, scrapeError              *prometheus.Desc
	writeFailing                                        *prometheus.Desc
}

func newCollector(src Sources, health HealthConfig, version string, now func() time.Time) *collector {
	return &collector{
		src: src, health: health, version: version, now: now,
		shares: prometheus.NewDesc("doorman_port_shares",
			"Port shares open on the router, by doorman's decision: trusted, blocked (being closed), pending (asked, no answer yet), undecided.",
			[]string{"router", "state"}, nil),
		alertsSent: prometheus.NewDesc("doorman_alerts_sent_total",
			"Alerts about port shares that Telegram confirmed.", nil, nil),
		queued: prometheus.NewDesc("doorman_messages_queued",
			"Messages (alerts, edits, notices, digests) waiting to be sent to Telegram.", nil, nil),
		decisions: prometheus.NewDesc("doorman_decisions_total",
			"Alerts answered in the chat, by decision: allowed or blocked.", []string{"decision"}, nil),
		rules: prometheus.NewDesc("doorman_rules",
			"Decisions kept as rules, by kind: trust or block.", []string{"kind"}, nil),
		routerErrors: prometheus.NewDesc("doorman_router_request_errors_total",
			"Requests to the router that failed, by SOAP action and UPnP error code (0: no answer, a timeout or an HTTP error). The answer that ends every listing is not counted.",
			[]string{"action", "code"}, nil),
		eventsSubscribed: prometheus.NewDesc("doorman_router_events_subscribed",
			"1 while the router's UPnP events are subscribed for a connection service, 0 while doorman polls it.",
			[]string{"router", "service"}, nil),
		lastList: prometheus.NewDesc("doorman_router_last_list_timestamp_seconds",
			"When the port shares of a connection service were last read completely, in Unix seconds; 0 if never.",
			[]string{"router", "service"}, nil),
		listError: prometheus.NewDesc("doorman_router_list_failing",
			"1 when the last reading of a connection service failed.", []string{"router", "service"}, nil),
		telegramOK: prometheus.NewDesc("doorman_telegram_last_success_timestamp_seconds",
			"When Telegram last answered doorman, in Unix seconds; 0 if never.", nil, nil),
		healthy: prometheus.NewDesc("doorman_healthy",
			"1 when /healthz answers 200: the router was read and Telegram answered recently.", nil, nil),
		info: prometheus.NewDesc("doorman_build_info",
			"doorman's version, always 1.", []string{"version"}, nil),
		scrapeError: prometheus.NewDesc("doorman_state_read_errors",
			"1 when the database could not be read for this scrape.", nil, nil),
		writeFailing: prometheus.NewDesc("doorman_state_write_failing",
			"1 while changes to the database fail to be saved (a full disk, a read-only file system).", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.shares, c.alertsSent, c.queued, c.decisions, c.rules,
		c.routerErrors, c.eventsSubscribed, c.lastList, c.listError, c.telegramOK, c.healthy, c.info, c.scrapeError, c.writeFailing} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.info, 1, c.version)

	var services []watcher.ServiceStatus
	if c.src.Services != nil {
		services = c.src.Services()
		for _, s := range services {
			gauge(c.eventsSubscribed, boolValue(s.Events), s.Router, s.Service)
			gauge(c.lastList, unixSeconds(s.LastList), s.Router, s.Service)
			gauge(c.listError, boolValue(s.LastError != ""), s.Router, s.Service)
		}
	}

	var st State
	var stErr error
	if c.src.State != nil {
		st, stErr = c.src.State()
		// A database that cannot be read leaves the numbers out rather
		// than reporting zeros that look true.
		gauge(c.scrapeError, boolValue(stErr != nil))
		if stErr == nil {
			// Every router doorman watches gets all four states, so
			// that a state going to zero is a zero, not a gap.
			routers := map[string]bool{}
			for _, s := range services {
				routers[s.Router] = true
			}
			for k := range st.Shares {
				routers[k.Router] = true
			}
			for _, r := range sortedKeys(routers) {
				for _, state := range shareStates {
					gauge(c.shares, float64(st.Shares[ShareKey{r, state}]), r, state)
				}
			}
			counter(c.alertsSent, float64(st.AlertsSent))
			gauge(c.queued, float64(st.Queued))
			counter(c.decisions, float64(st.Decisions[storage.AlertAllowed]), "allowed")
			counter(c.decisions, float64(st.Decisions[storage.AlertBlocked]), "blocked")
			gauge(c.rules, float64(st.Rules[storage.RuleTrust]), string(storage.RuleTrust))
			gauge(c.rules, float64(st.Rules[storage.RuleBlock]), string(storage.RuleBlock))
		}
	}

	if c.src.RouterErrors != nil {
		errs := c.src.RouterErrors()
		keys := make([]watcher.RequestErrorKey, 0, len(errs))
		for k := range errs {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b watcher.RequestErrorKey) int {
			return cmp.Or(cmp.Compare(a.Action, b.Action), cmp.Compare(a.Code, b.Code))
		})
		for _, k := range keys {
			counter(c.routerErrors, float64(errs[k]), k.Action, strconv.Itoa(k.Code))
		}
	}

	var tg *Telegram
	if c.src.Telegram != nil {
		t := c.src.Telegram()
		tg = &t
		gauge(c.telegramOK, unixSeconds(t.LastOK))
	}

	var wf *storage.WriteFault
	if c.src.WriteFault != nil {
		wf = c.src.WriteFault()
		gauge(c.writeFailing, boolValue(wf != nil))
	}

	ok, _ := judge(c.now(), c.health, services, st, stErr, wf, tg)
	gauge(c.healthy, boolValue(ok))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
