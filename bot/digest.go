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
	title := "🧹 <b>Weekly digest</b>"
	if d.Due.IsZero() {
		title = "🧹 <b>Digest</b>"
	}
	if len(d.Items) == 0 && len(d.Rules) == 0 {
		return fmt.Sprintf("%s: nothing stale. %d port shares open, none forgotten. Doorman is watching.", title, d.OpenShares), nil
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
	fmt.Fprintf(&b, "\n%d port shares open · %d worth closing", d.OpenShares, len(d.Items))
	if risky > 0 {
		fmt.Fprintf(&b, " · ⚠️ %d risky", risky)
	}
	if len(d.Rules) > 0 {
		fmt.Fprintf(&b, " · %d rules unused", len(d.Rules))
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
			fmt.Fprintf(&b, " · “%s”", esc(m.Description, 60))
		}
		var why []string
		for _, r := range it.Reasons {
			why = append(why, staleReasonText(r))
		}
		// These caps bound an entry whatever the devices call
		// themselves; DigestPager fills pages up to Telegram's limit.
		fmt.Fprintf(&b, "\n    why: %s", esc(strings.Join(why, "; "), 160))
		if it.Risk != "" {
			fmt.Fprintf(&b, "\n    risky: %s", esc(it.Risk, 120))
		}
		switch it.State {
		case storage.DigestClosed:
			fmt.Fprintf(&b, "\n    🚪 closed by %s", esc(it.By.Name, 64))
		case storage.DigestKept:
			fmt.Fprintf(&b, "\n    💤 kept by %s; not listed again for %s", esc(it.By.Name, 64), formatDuration(staleAfter))
		case storage.DigestGone:
			b.WriteString("\n    gone meanwhile")
		}
		if note := w.digestNote(it.Note); note != "" {
			b.WriteString("\n    ⚠️ " + note)
		}
		if it.State == storage.DigestOpen || it.State == storage.DigestRefused {
			kb = append(kb, []Button{
				{Text: fmt.Sprintf("🚪 Close %d", n), Data: digestData(verbClose, d.ID, i)},
				{Text: fmt.Sprintf("💤 Keep %d", n), Data: digestData(verbKeep, d.ID, i)},
			})
		}
	}
	header := false
	for i, r := range d.Rules {
		if r.Page != page {
			continue
		}
		if !header {
			b.WriteString("\n\n<b>Rules that matched nothing</b>")
			header = true
		}
		n := len(d.Items) + i + 1
		kind := "✅ trusted"
		if r.Kind == storage.RuleBlock {
			kind = "⛔ blocked"
		}
		fmt.Fprintf(&b, "\n%d. %s <b>%s</b> %s port %d", n, kind, esc(r.Service.InternalClient, 40), r.Service.Protocol, r.Service.InternalPort)
		if r.Service.Description != "" {
			fmt.Fprintf(&b, " · “%s”", esc(r.Service.Description, 60))
		}
		fmt.Fprintf(&b, " · nothing for %s", formatDuration(r.IdleFor))
		if r.Forgotten {
			b.WriteString(" · forgotten")
			continue
		}
		kb = append(kb, []Button{{Text: fmt.Sprintf("🗑 Forget rule %d", n), Data: digestData(verbForgetIdle, d.ID, i)}})
	}
	if page == 0 {
		open := 0
		for _, it := range d.Items {
			if it.Risk != "" && (it.State == storage.DigestOpen || it.State == storage.DigestRefused) {
				open++
			}
		}
		if open > 0 {
			kb = append(Keyboard{{{Text: fmt.Sprintf("⚠️ Close all risky (%d)", open), Data: digestData(verbCloseRisky, d.ID, 0)}}}, kb...)
		}
	}
	return b.String(), kb
}

func (b *Bot) handleDigestPress(ctx context.Context, cb *Callback, who storage.User) {
	verb, id, idx, ok := parseDigestData(cb.Data)
	if !ok {
		b.answer(ctx, cb, "Unknown button.")
		return
	}
	d, err := b.engine.Digest(ctx, id)
	switch {
	case errors.Is(err, approvals.ErrDigestItem):
		b.answer(ctx, cb, "Doorman does not know this digest (any more).")
		return
	case err != nil:
		b.logger.Error("unable to read a digest", "digest", id, "err", err)
		b.answer(ctx, cb, "Doorman could not read its database; try again.")
		return
	case d.ChatID != cb.ChatID:
		b.answer(ctx, cb, "This button does not belong to this chat.")
		return
	}
	switch verb {
	case verbClose:
		if idx >= len(d.Items) {
			b.answer(ctx, cb, "Unknown button.")
			return
		}
		m := d.Items[idx].Mapping
		b.answer(ctx, cb, fmt.Sprintf("Closing %s %d on the router…", m.Protocol, m.ExternalPort))
		b.closeStale(ctx, id, idx, who)
	case verbKeep:
		_, err := b.engine.KeepStale(ctx, id, idx, who)
		b.answer(ctx, cb, digestAnswer(err, "Kept. It will not be listed for "+formatDuration(b.engine.StaleAfterPeriod())+"."))
	case verbForgetIdle:
		err := b.engine.ForgetIdleRule(ctx, id, idx)
		b.answer(ctx, cb, digestAnswer(err, "Forgotten. Doorman will ask again when this service opens a share."))
	case verbCloseRisky:
		risky, err := b.engine.RiskyOpen(id)
		if err != nil || len(risky) == 0 {
			b.answer(ctx, cb, digestAnswer(err, "No risky share is open in this digest."))
			return
		}
		b.answer(ctx, cb, fmt.Sprintf("Closing %d risky shares…", len(risky)))
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

func digestAnswer(err error, ok string) string {
	switch {
	case err == nil:
		return ok
	case errors.Is(err, approvals.ErrDecided):
		return "Already done."
	case errors.Is(err, approvals.ErrDigestItem):
		return "Unknown button."
	}
	return "Doorman could not do that; see its log."
}

func (b *Bot) cmdDigest(ctx context.Context) {
	if _, err := b.engine.MakeDigest(ctx, time.Time{}, false); err != nil {
		b.logger.Error("unable to make the digest", "err", err)
		b.reply(ctx, "Doorman could not make the digest; see its log.", nil)
	}
}

// staleReasonText words why a share is worth closing, as plain text.
func staleReasonText(r storage.StaleReason) string {
	if r.Text != "" {
		return r.Text
	}
	switch r.Kind {
	case "old":
		return "open for " + humanDuration(r.OpenFor)
	case "permanent":
		return "permanent: it never closes by itself"
	case "long-lease":
		return fmt.Sprintf("lease of %s left, far longer than the %s it has been open", humanDuration(r.Lease), humanDuration(r.OpenFor))
	case "device-away":
		return "the device has not been seen on the network for " + humanDuration(r.AwayFor)
	}
	return r.Kind
}

// humanDuration rounds a duration the way people say it.
func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
	return fmt.Sprintf("%d seconds", int(d.Seconds()))
}
