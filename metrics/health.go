package metrics

import (
	"fmt"
	"strings"
	"time"

	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/watcher"
)

// HealthConfig says how old is too old.
type HealthConfig struct {
	// RouterMaxAge is how long ago every connection service must have
	// been read completely. doorman reads the router every poll interval
	// without events and every safety poll interval with them, so
	// max(3 × poll interval, safety poll interval + a minute) leaves room
	// for a failed reading or two.
	RouterMaxAge time.Duration
	// TelegramMaxAge is how long ago Telegram must have answered, and how
	// long a message may wait in the outbox.
	TelegramMaxAge time.Duration
	// Started is when doorman started: until the max ages have passed
	// since, nothing read or sent yet is no fault.
	Started time.Time
}

// Check tells whether doorman is healthy: every router service was read
// within RouterMaxAge, and, with Telegram, Telegram answered within
// TelegramMaxAge, accepts the token and takes the messages doorman queues.
// reason says what is wrong, on one line, when it is not.
func Check(now time.Time, cfg HealthConfig, src Sources) (ok bool, reason string) {
	var services []watcher.ServiceStatus
	if src.Services != nil {
		services = src.Services()
	}
	var st State
	var stErr error
	if src.State != nil {
		st, stErr = src.State()
	}
	var tg *Telegram
	if src.Telegram != nil {
		t := src.Telegram()
		tg = &t
	}
	var wf *storage.WriteFault
	if src.WriteFault != nil {
		wf = src.WriteFault()
	}
	return judge(now, cfg, services, st, stErr, wf, tg)
}

func judge(now time.Time, cfg HealthConfig, services []watcher.ServiceStatus, st State, stErr error, wf *storage.WriteFault, tg *Telegram) (bool, string) {
	var problems []string
	up := now.Sub(cfg.Started)

	if len(services) == 0 && up > cfg.RouterMaxAge {
		problems = append(problems, fmt.Sprintf("no router found in the %s since doorman started", age(up)))
	}
	for _, s := range services {
		if since := now.Sub(s.LastList); (s.LastList.IsZero() && up > cfg.RouterMaxAge) || (!s.LastList.IsZero() && since > cfg.RouterMaxAge) {
			p := fmt.Sprintf("router %s not read for %s", host(s.Router), age(since))
			if s.LastList.IsZero() {
				p = fmt.Sprintf("router %s not read since doorman started %s ago", host(s.Router), age(up))
			}
			if s.LastError != "" {
				p += " (last error: " + oneLine(s.LastError) + ")"
			}
			problems = append(problems, p)
			// The first stale service is reason enough; a router's other
			// services mostly say the same.
			break
		}
	}

	if stErr != nil {
		problems = append(problems, "unable to read the database: "+oneLine(stErr.Error()))
	}
	if wf != nil {
		// At once, not after a grace: doorman forgets every change meanwhile.
		problems = append(problems, fmt.Sprintf("database: cannot write for %s (%d failed): %s", age(now.Sub(wf.Since)), wf.Count, oneLine(wf.Err.Error())))
	}

	if tg != nil {
		switch since := now.Sub(tg.LastOK); {
		case tg.TokenRejected:
			problems = append(problems, "Telegram rejected the bot token (401)")
		case tg.LastOK.IsZero() && up > cfg.TelegramMaxAge:
			problems = append(problems, fmt.Sprintf("Telegram has not answered since doorman started %s ago%s", age(up), lastError(tg.LastError)))
		case !tg.LastOK.IsZero() && since > cfg.TelegramMaxAge:
			problems = append(problems, fmt.Sprintf("Telegram has not answered for %s%s", age(since), lastError(tg.LastError)))
		case st.Queued > 0 && !st.OldestQueued.IsZero() && now.Sub(st.OldestQueued) > cfg.TelegramMaxAge:
			// Telegram answers, but does not take the messages: a chat
			// that is gone, say.
			problems = append(problems, fmt.Sprintf("%d message(s) waiting to be sent, the oldest for %s%s",
				st.Queued, age(now.Sub(st.OldestQueued)), lastError(tg.LastError)))
		}
	}

	if len(problems) == 0 {
		return true, "ok"
	}
	return false, strings.Join(problems, "; ")
}

func lastError(s string) string {
	if s == "" {
		return ""
	}
	return " (last error: " + oneLine(s) + ")"
}

// age rounds d for people: 45s, 12m, 3h5m.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// host shortens a router's description URL to its host, as people know it.
func host(router string) string {
	return watcher.RouterHost(router)
}

// oneLine keeps an error on one line of at most 300 bytes: the reason is a
// health check's output, and a router's text may hold anything.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for i := range s {
		if i >= 300 {
			return s[:i] + "…"
		}
	}
	return s
}
