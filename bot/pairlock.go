package bot

import (
	"time"
)

// Wrong pairing codes lock pairing per chat and per Telegram user, so that a
// stranger who found the bot locks out only their own chat, however many
// groups they add the bot to, and the owner still pairs from theirs. A
// backstop over all chats together bounds the guesses of many strangers
// working together: with it, at most pairAllTries guesses per pairLockFor
// reach the code, 8640 a day against 31^10 codes.
const (
	// pairTries wrong codes from one chat, or from one user, lock that
	// chat or user out for pairLockFor.
	pairTries   = 5
	pairLockFor = 10 * time.Minute
	// pairAllTries wrong codes from all chats within pairLockFor pause
	// pairing for everyone until the oldest of them is that old. One
	// stranger cannot reach it: their user is locked after pairTries; it
	// takes a dozen Telegram accounts.
	pairAllTries = 60
	// pairRemindEvery spaces the answers to a locked chat: a stranger who
	// keeps sending gets one a minute, and doorman logs no more.
	pairRemindEvery = time.Minute
)

// lockScope says who a pairing lock holds out.
type lockScope int

const (
	lockNone lockScope = iota
	lockChat           // this chat, or this user, sent too many wrong codes
	lockAll            // all chats together did
)

// pairLock counts wrong pairing codes. It is pure: the caller holds the
// pairing mutex and passes the time.
type pairLock struct {
	chats, users map[int64]*wrongCodes
	// recent holds the times of the wrong codes from anyone within
	// pairLockFor, oldest first; at most pairAllTries.
	recent []time.Time
}

// wrongCodes is the count of one chat or one user.
type wrongCodes struct {
	n           int
	last        time.Time
	lockedUntil time.Time
	reminded    time.Time // when a code sent while locked was last answered
}

// locked says whether a code from chat and user may be tried at now, and
// if not, until when and for whom it is locked.
func (l *pairLock) locked(now time.Time, chat, user int64) (lockScope, time.Time) {
	l.prune(now)
	var until time.Time
	for _, w := range []*wrongCodes{l.chats[chat], l.users[user]} {
		if w != nil && now.Before(w.lockedUntil) && w.lockedUntil.After(until) {
			until = w.lockedUntil
		}
	}
	if !until.IsZero() {
		return lockChat, until
	}
	if len(l.recent) >= pairAllTries {
		return lockAll, l.recent[0].Add(pairLockFor)
	}
	return lockNone, time.Time{}
}

// wrong records a wrong code from chat and user at now, which must have
// been allowed by locked, and says whether it locked them out.
func (l *pairLock) wrong(now time.Time, chat, user int64) (lockScope, time.Time) {
	if l.chats == nil {
		l.chats, l.users = map[int64]*wrongCodes{}, map[int64]*wrongCodes{}
	}
	l.recent = append(l.recent, now)
	scope, until := lockNone, time.Time{}
	for _, m := range []struct {
		byID map[int64]*wrongCodes
		id   int64
	}{{l.chats, chat}, {l.users, user}} {
		w := m.byID[m.id]
		if w == nil {
			w = &wrongCodes{}
			m.byID[m.id] = w
		}
		w.n++
		w.last = now
		if w.n >= pairTries {
			w.n = 0
			w.lockedUntil = now.Add(pairLockFor)
			scope, until = lockChat, w.lockedUntil
		}
	}
	if scope == lockNone && len(l.recent) >= pairAllTries {
		return lockAll, l.recent[0].Add(pairLockFor)
	}
	return scope, until
}

// remind says whether a code from chat and user that locked refused
// should be answered (and logged): not if the chat or the user was answered
// within pairRemindEvery.
func (l *pairLock) remind(now time.Time, chat, user int64) bool {
	var known []*wrongCodes
	for _, w := range []*wrongCodes{l.chats[chat], l.users[user]} {
		if w == nil {
			continue
		}
		if now.Sub(w.reminded) < pairRemindEvery {
			return false
		}
		known = append(known, w)
	}
	for _, w := range known {
		w.reminded = now
	}
	return true
}

// reset forgets everything, after a pairing.
func (l *pairLock) reset() { *l = pairLock{} }

// prune forgets wrong codes older than pairLockFor, so that a chat that
// tried once last week starts afresh and the maps stay small: entries are
// made only for wrong codes, at most pairAllTries of them per pairLockFor.
func (l *pairLock) prune(now time.Time) {
	i := 0
	for i < len(l.recent) && now.Sub(l.recent[i]) >= pairLockFor {
		i++
	}
	l.recent = l.recent[i:]
	for _, byID := range []map[int64]*wrongCodes{l.chats, l.users} {
		for id, w := range byID {
			if now.Sub(w.last) >= pairLockFor && !now.Before(w.lockedUntil) {
				delete(byID, id)
			}
		}
	}
}

// lockText is the answer to a code that was not tried, or that locked.
func (w Words) lockText(scope lockScope, until, now time.Time) string {
	left := w.duration(until.Sub(now))
	if scope == lockAll {
		return w.T("PairPausedForAll", "Left", left)
	}
	return w.T("PairLockedHere", "Left", left)
}
