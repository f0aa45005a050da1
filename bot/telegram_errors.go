package bot

// This file classifies what a Bot API call failed with: every failure is an
// *APIError, marked retryable or not, and never carries the bot token.

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
)

// classify turns whatever tgbotapi returned into an *APIError with the
// token removed.
func (t *TelegramAPI) classify(callCtx, parent context.Context, method string, timeout time.Duration, hc *callClient, err error) *APIError {
	e := &APIError{Method: method}
	var tgErr *tgbotapi.Error
	switch {
	case hc.tooLarge:
		e.Code = hc.status
		e.Err = errTooLarge
	case hc.wireErr != nil || (hc.status == 0 && callCtx.Err() != nil):
		cause := hc.wireErr
		if cause == nil {
			cause = err
		}
		e.Err = t.wireError(callCtx, parent, timeout, cause)
		// A call the caller cancelled is not worth repeating; one that
		// timed out or failed on the way is.
		e.Retryable = !errors.Is(parent.Err(), context.Canceled)
	case errors.As(err, &tgErr):
		e.Code = tgErr.Code
		if e.Code == 0 {
			e.Code = hc.status
		}
		e.Description = t.redact(tgErr.Message)
		e.RetryAfter = time.Duration(tgErr.RetryAfter) * time.Second
		if e.RetryAfter == 0 && e.Code == http.StatusTooManyRequests {
			e.RetryAfter = retryAfterFromText(tgErr.Message)
		}
		e.MigrateToChatID = tgErr.MigrateToChatID
		e.Retryable = retryableCode(e.Code)
	case hc.status == 0:
		// Failed before anything was sent: a request tgbotapi could not
		// build, which retrying does not fix.
		e.Err = t.redactErr(stripURL(err))
	case errors.Is(err, errBadResult):
		// Telegram accepted the call; repeating it could do it twice.
		e.Code = hc.status
		e.Err = t.redactErr(err)
	default:
		// Not the Bot API's JSON: typically a reverse proxy's error page,
		// or a base URL pointing at something else.
		e.Code = hc.status
		ct, _, _ := mime.ParseMediaType(hc.contentType)
		if ct == "" {
			ct = "no content type"
		}
		e.Err = fmt.Errorf("HTTP %d %s, not a Bot API answer (%s): %w",
			hc.status, http.StatusText(hc.status), ct, t.redactErr(stripURL(err)))
		e.Retryable = hc.status >= 500 || hc.status == http.StatusTooManyRequests
	}
	return e
}

// wireError explains a transport failure, keeping context errors
// detectable with errors.Is.
func (t *TelegramAPI) wireError(callCtx, parent context.Context, timeout time.Duration, err error) error {
	err = t.redactErr(stripURL(err))
	switch {
	case parent.Err() != nil:
		if !errors.Is(err, parent.Err()) {
			err = fmt.Errorf("%w: %w", parent.Err(), err)
		}
	case callCtx.Err() != nil:
		if !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		err = fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	return err
}

// stripURL drops *url.Error, whose message quotes the URL and so the token.
func stripURL(err error) error {
	var ue *url.Error
	for errors.As(err, &ue) {
		if ue.Err == nil {
			return errors.New(ue.Op + " request failed")
		}
		err = ue.Err
	}
	return err
}

func (t *TelegramAPI) redact(s string) string {
	return strings.ReplaceAll(s, t.token, redactedToken)
}

// redactErr is a last line of defence: the only known carrier of the
// token, *url.Error, is stripped already.
func (t *TelegramAPI) redactErr(err error) error {
	if err == nil || !strings.Contains(err.Error(), t.token) {
		return err
	}
	return &redactedError{msg: t.redact(err.Error()), cause: err}
}

type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }

// Unwrap keeps context errors detectable but hides the original error,
// whose text carries the token.
func (e *redactedError) Unwrap() error {
	for _, target := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(e.cause, target) {
			return target
		}
	}
	return nil
}

var retryAfterText = regexp.MustCompile(`(?i)retry after (\d+)`)

func retryAfterFromText(s string) time.Duration {
	m := retryAfterText.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second
}

func retryableCode(code int) bool {
	switch {
	case code == http.StatusTooManyRequests, code == http.StatusConflict, code >= 500:
		return true
	}
	return false
}

// APIError is a failed Bot API call. Every failure is marked retryable or
// not, so callers can decide between trying again and giving up without
// knowing Telegram's error codes.
type APIError struct {
	Method string
	// Code is Telegram's error_code, or the HTTP status when the answer was
	// not the Bot API's JSON; 0 when no answer came at all.
	Code        int
	Description string
	// RetryAfter is how long Telegram asks to wait (429 only).
	RetryAfter time.Duration
	// MigrateToChatID is set when a group became a supergroup and so has a
	// new chat ID, which the configuration has to follow.
	MigrateToChatID int64
	Retryable       bool
	Err             error
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("telegram: unable to ")
	b.WriteString(e.Method)
	b.WriteString(": ")
	switch {
	case e.Description != "":
		b.WriteString(e.Description)
		if e.Code != 0 {
			fmt.Fprintf(&b, " (%d)", e.Code)
		}
		if e.MigrateToChatID != 0 {
			fmt.Fprintf(&b, "; the chat is now %d", e.MigrateToChatID)
		}
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	case e.Code != 0:
		fmt.Fprintf(&b, "HTTP %d %s", e.Code, http.StatusText(e.Code))
	default:
		b.WriteString("unknown error")
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.Err }

func asAPIError(err error) *APIError {
	var e *APIError
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// IsRetryable reports whether repeating the call may succeed.
func IsRetryable(err error) bool {
	e := asAPIError(err)
	return e != nil && e.Retryable
}

// RetryAfterOf returns how long Telegram asked to wait before the next
// call, 0 if it did not.
func RetryAfterOf(err error) time.Duration {
	if e := asAPIError(err); e != nil {
		return e.RetryAfter
	}
	return 0
}

func isBadRequest(err error, phrases ...string) bool {
	e := asAPIError(err)
	if e == nil || e.Code != http.StatusBadRequest {
		return false
	}
	d := strings.ToLower(e.Description)
	for _, p := range phrases {
		if strings.Contains(d, p) {
			return true
		}
	}
	return false
}

// IsNotModified reports an edit that would not change the message, which
// callers can take as success.
func IsNotModified(err error) bool {
	return isBadRequest(err, "message is not modified")
}

// IsMessageGone reports an edit of a message that was deleted, is too old
// or otherwise cannot be edited any more; sending a new one is the way out.
func IsMessageGone(err error) bool {
	return isBadRequest(err, "message to edit not found", "message can't be edited", "message_id_invalid")
}

// IsUnauthorized reports a token Telegram rejects: wrong or revoked.
func IsUnauthorized(err error) bool {
	e := asAPIError(err)
	return e != nil && e.Code == http.StatusUnauthorized
}

// IsForbidden reports that the bot may not write to the chat: blocked by
// the user or removed from the group.
func IsForbidden(err error) bool {
	e := asAPIError(err)
	return e != nil && e.Code == http.StatusForbidden
}
