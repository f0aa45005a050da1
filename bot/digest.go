package bot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/storage"
)

// Digest buttons carry "<verb>:<digest>.<entry>" ("r:<digest>" for close
// all risky): IDs into bbolt, well under 64 bytes.
const (
	verbClose      = "c"
	verbKeep       = "k"
	verbCloseRisky = "r"
	verbForgetIdle = "g"
)

func digestData(verb string, digestID uint64, idx int) string {
	if verb == verbCloseRisky {
		return verb + ":" + strconv.FormatUint(digestID, 10)
	}
	return verb + ":" + strconv.FormatUint(digestID, 10) + "." + strconv.Itoa(idx)
}

// parseDigestData splits digest button data; ok is false for anything
// doorman did not write.
func parseDigestData(data string) (verb string, digestID uint64, idx int, ok bool) {
	verb, rest, found := strings.Cut(data, ":")
	if !found || len(data) > 64 {
		return "", 0, 0, false
	}
	canon := func(s string) (uint64, bool) {
		n, err := strconv.ParseUint(s, 10, 64)
		return n, err == nil && strconv.FormatUint(n, 10) == s
	}
	switch verb {
	case verbCloseRisky:
		id, ok := canon(rest)
		if !ok || id == 0 {
			return "", 0, 0, false
		}
		return verb, id, 0, true
	case verbClose, verbKeep, verbForgetIdle:
		ds, is, found := strings.Cut(rest, ".")
		id, ok1 := canon(ds)
		i, ok2 := canon(is)
		if !found || !ok1 || !ok2 || id == 0 || i > 10000 {
			return "", 0, 0, false
		}
		return verb, id, int(i), true
	}
	return "", 0, 0, false
}

func isDigestVerb(data string) bool {
	v, _, _ := strings.Cut(data, ":")
	switch v {
	case verbClose, verbKeep, verbCloseRisky, verbForgetIdle:
		return true
	}
	return false
}

// renderDigestPage renders one page of a digest with its buttons.
func renderDigestPage(w Words, d storage.Digest, page int, staleAfter time.Duration, loc *time.Location) (string, Keyboard) {
	title := w.T("DigestTitleWeekly")
	if d.Due.IsZero() {
		title = w.T("DigestTitle")
	}
	if len(d.Items) == 0 && len(d.Rules) == 0 {
		return w.N("DigestAllClear", d.OpenShares, "Title", title), nil
	}
	var b strings.Builder
	b.WriteString(title)
	if d.Pages > 1 {
		fmt.Fprintf(&b, " (%d/%d)", page+1, d.Pages)
	}
	risky := 0
	for _, it := range d.Items {
		if it.Risk != "" {
			risky++
		}
	}
	b.WriteString(w.N("DigestOpenShares", d.OpenShares))
	b.WriteString(w.N("DigestWorthClosing", len(d.Items)))
	if risky > 0 {
		b.WriteString(w.N("DigestRiskyCount", risky))
	}
	if len(d.Rules) > 0 {
		b.WriteString(w.N("DigestRulesUnused", len(d.Rules)))
	}
	var kb Keyboard
	for i, it := range d.Items {
		if it.Page != page {
			continue
		}
		n := i + 1
		m := it.Mapping
		mark := ""
		if it.Risk != "" {
			mark = "⚠️ "
		}
		fmt.Fprintf(&b, "\n\n%d. %s<b>%s</b> %s %d → %d", n, mark, esc(m.InternalClient, 40), m.Protocol, m.ExternalPort, m.InternalPort)
		if m.Description != "" {
			b.WriteString(w.T("DigestDescription", "Description", esc(m.Description, 60)))
		}
		var why []string
		for _, r := range it.Reasons {
			why = append(why, w.staleReasonText(r))
		}
		// These caps bound an entry whatever the devices call
		// themselves; DigestPager fills pages up to Telegram's limit.
		b.WriteString(w.T("DigestWhy", "Why", esc(strings.Join(why, "; "), 160)))
		if it.Risk != "" {
			// Approvals stores the reason in English; the port tells
			// which it is, to word it in the chat's language.
			risk := it.Risk
			if r, ok := approvals.RiskOf(m.InternalPort); ok {
				risk = w.riskWhy(r)
			}
			b.WriteString(w.T("DigestRisk", "Risk", esc(risk, 120)))
		}
		switch it.State {
		case storage.DigestClosed:
			b.WriteString(w.T("DigestClosedBy", "Name", esc(it.By.Name, 64)))
		case storage.DigestKept:
			b.WriteString(w.T("DigestKeptBy", "Name", esc(it.By.Name, 64), "For", w.duration(staleAfter)))
		case storage.DigestGone:
			b.WriteString(w.T("DigestGone"))
		}
		if note := w.digestNote(it.Note); note != "" {
			b.WriteString("\n    ⚠️ " + note)
		}
		if it.State == storage.DigestOpen || it.State == storage.DigestRefused {
			kb = append(kb, []Button{
				{Text: w.T("ButtonDigestClose", "N", n), Data: digestData(verbClose, d.ID, i)},
				{Text: w.T("ButtonDigestKeep", "N", n), Data: digestData(verbKeep, d.ID, i)},
			})
		}
	}
	header := false
	for i, r := range d.Rules {
		if r.Page != page {
			continue
		}
		if !header {
			b.WriteString(w.T("DigestRulesHeader"))
			header = true
		}
		n := len(d.Items) + i + 1
		kind := w.T("DigestRuleTrusted")
		if r.Kind == storage.RuleBlock {
			kind = w.T("DigestRuleBlocked")
		}
		b.WriteString(w.T("DigestRule", "N", n, "Kind", kind, "Device", esc(r.Service.InternalClient, 40), "Protocol", r.Service.Protocol, "Port", r.Service.InternalPort))
		if r.Service.Description != "" {
			b.WriteString(w.T("DigestDescription", "Description", esc(r.Service.Description, 60)))
		}
		b.WriteString(w.T("DigestRuleIdle", "For", w.duration(r.IdleFor)))
		if r.Forgotten {
			b.WriteString(w.T("DigestRuleForgotten"))
			continue
		}
		kb = append(kb, []Button{{Text: w.T("ButtonDigestForget", "N", n), Data: digestData(verbForgetIdle, d.ID, i)}})
	}
	if page == 0 {
		open := 0
		for _, it := range d.Items {
			if it.Risk != "" && (it.State == storage.DigestOpen || it.State == storage.DigestRefused) {
				open++
			}
		}
		if open > 0 {
			kb = append(Keyboard{{{Text: w.N("ButtonDigestCloseRisky", open), Data: digestData(verbCloseRisky, d.ID, 0)}}}, kb...)
		}
	}
	return b.String(), kb
}

func (b *Bot) handleDigestPress(ctx context.Context, cb *Callback, who storage.User) {
	w := b.words()
	verb, id, idx, ok := parseDigestData(cb.Data)
	if !ok {
		b.answer(ctx, cb, w.T("PressUnknown"))
		return
	}
	d, err := b.engine.Digest(ctx, id)
	switch {
	case errors.Is(err, approvals.ErrDigestItem):
		b.answer(ctx, cb, w.T("DigestUnknown"))
		return
	case err != nil:
		b.logger.Error("unable to read a digest", "digest", id, "err", err)
		b.answer(ctx, cb, w.T("PressDatabase"))
		return
	case d.ChatID != cb.ChatID:
		b.answer(ctx, cb, w.T("DigestOtherChat"))
		return
	}
	switch verb {
	case verbClose:
		if idx >= len(d.Items) {
			b.answer(ctx, cb, w.T("PressUnknown"))
			return
		}
		m := d.Items[idx].Mapping
		b.answer(ctx, cb, w.T("PressClosing", "Protocol", m.Protocol, "Port", m.ExternalPort))
		b.closeStale(ctx, id, idx, who)
	case verbKeep:
		_, err := b.engine.KeepStale(ctx, id, idx, who)
		b.answer(ctx, cb, w.digestAnswer(err, w.T("DigestKept", "For", w.duration(b.engine.StaleAfterPeriod()))))
	case verbForgetIdle:
		err := b.engine.ForgetIdleRule(ctx, id, idx)
		b.answer(ctx, cb, w.digestAnswer(err, w.T("Forgotten")))
	case verbCloseRisky:
		risky, err := b.engine.RiskyOpen(id)
		if err != nil || len(risky) == 0 {
			b.answer(ctx, cb, w.digestAnswer(err, w.T("DigestNoRisky")))
			return
		}
		b.answer(ctx, cb, w.N("DigestClosingRisky", len(risky)))
		for _, i := range risky {
			b.closeStale(ctx, id, i, who)
		}
	}
}

func (b *Bot) closeStale(ctx context.Context, id uint64, idx int, who storage.User) {
	_, err := b.engine.CloseStale(ctx, id, idx, who)
	var refused *approvals.RefusedError
	switch {
	case err == nil, errors.Is(err, approvals.ErrDecided), errors.Is(err, approvals.ErrInProgress):
	case errors.As(err, &refused):
		b.logger.Warn("the router refused to close a stale share", "digest", id, "entry", idx, "err", err)
	default:
		b.logger.Error("unable to close a stale share", "digest", id, "entry", idx, "err", err)
	}
}

func (w Words) digestAnswer(err error, ok string) string {
	switch {
	case err == nil:
		return ok
	case errors.Is(err, approvals.ErrDecided):
		return w.T("DigestAlreadyDone")
	case errors.Is(err, approvals.ErrDigestItem):
		return w.T("PressUnknown")
	}
	return w.T("DigestFailed")
}

func (b *Bot) cmdDigest(ctx context.Context) {
	if _, err := b.engine.MakeDigest(ctx, time.Time{}, false); err != nil {
		b.logger.Error("unable to make the digest", "err", err)
		b.reply(ctx, b.words().T("DigestNotMade"), nil)
	}
}

// staleReasonText words why a share is worth closing, as plain text.
func (w Words) staleReasonText(r storage.StaleReason) string {
	if r.Text != "" {
		return r.Text
	}
	switch r.Kind {
	case "old":
		return w.T("StaleOld", "For", w.humanDuration(r.OpenFor))
	case "permanent":
		return w.T("StalePermanent")
	case "long-lease":
		return w.T("StaleLongLease", "Lease", w.humanDuration(r.Lease), "For", w.humanDuration(r.OpenFor))
	case "device-away":
		return w.T("StaleDeviceAway", "For", w.humanDuration(r.AwayFor))
	}
	return r.Kind
}

// humanDuration rounds a duration the way people say it: "3 days".
func (w Words) humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return w.N("DigestDays", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return w.N("DigestHours", int(d.Hours()))
	case d >= 2*time.Minute:
		return w.N("DigestMinutes", int(d.Minutes()))
	}
	return w.N("DigestSeconds", int(d.Seconds()))
}
