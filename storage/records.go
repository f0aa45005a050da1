package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/doorman-upnp/doorman/watcher"
)

// Share is a port mapping doorman has seen, with its history.
type Share struct {
	Mapping   watcher.Mapping
	FirstSeen time.Time
	LastSeen  time.Time
	// GoneAt is when the router stopped listing it; zero while it is there.
	// Gone shares are kept for a while so that a share that comes back
	// (after a router restart, say) is recognised and not asked about again.
	GoneAt time.Time
	// AlertID is the alert that asked about this share, 0 if none did.
	AlertID uint64
	// SnoozedUntil keeps the share out of digests until then (Keep).
	SnoozedUntil time.Time `json:",omitempty"`
}

// Gone reports whether the router no longer lists the share.
func (s Share) Gone() bool { return !s.GoneAt.IsZero() }

// ShareKey is the storage key of a share: router, service, protocol,
// external port and remote host, the identity of a row in the router's
// table. The router comes first so that one router's shares are adjacent.
func ShareKey(k watcher.Key) string {
	return strings.Join([]string{k.Router, k.Service, k.Protocol, strconv.Itoa(int(k.ExternalPort)), k.RemoteHost}, "\x00")
}

// RuleKind is what a rule does with matching shares.
type RuleKind string

const (
	RuleTrust RuleKind = "trust"
	RuleBlock RuleKind = "block"
)

// User is who made a decision.
type User struct {
	ID   int64
	Name string
}

// Rule is a decision about a service that outlives the share it was made on.
type Rule struct {
	ID      uint64
	Kind    RuleKind
	Service ServiceKey
	// Scope is ScopePort (the device's inside port), ScopeDevice
	// (everything the device opens) or, for rules made before ports,
	// ScopeService; see Covers.
	Scope RuleScope `json:",omitempty"`
	// MAC lets the rule follow the device when DHCP gives it another
	// address; "" when doorman could not tell the MAC.
	MAC string `json:",omitempty"`
	// Example is the share the decision was made on, for people.
	Example     watcher.Mapping
	CreatedAt   time.Time
	CreatedBy   User
	LastMatched time.Time
	// Matches counts the shares the rule applied to after it was made.
	Matches int
	// NoticeAt is when the chat was last told that the rule acted, and
	// Unreported how often it acted since, so that notices can be rate
	// limited without losing count.
	NoticeAt   time.Time
	Unreported int
}

// RuleScope says what a rule covers.
type RuleScope string

const (
	// ScopeService is the zero value: the scope of the rules made before
	// scopes, and of those made before ports (see Covers).
	ScopeService RuleScope = ""
	// ScopePort covers one inside port of one device, whatever protocol,
	// outside port, description or origin it uses.
	ScopePort   RuleScope = "port"
	ScopeDevice RuleScope = "device"
)

// Covers reports whether the rule covers a share of service svc on a device
// with the given MAC ("" if unknown).
//
// A block rule covers the device's inside port, whatever its scope says: a
// block made before ports (ScopeService, with protocol and description) is
// widened, because a device that only has to rename a share to escape a
// Block is not blocked, and closing more of what the owner said to close is
// the safe side. An old trust rule (ScopeService) keeps its narrow meaning:
// widening it would trust shares the owner never saw.
func (r Rule) Covers(svc ServiceKey, mac string) bool {
	// The MAC decides when both are known: the address may have moved to
	// another device with DHCP.
	sameDevice := r.Service.InternalClient == svc.InternalClient
	if r.MAC != "" && mac != "" {
		sameDevice = r.MAC == mac
	}
	switch {
	case r.Scope == ScopeDevice:
		return sameDevice
	case r.Scope == ScopePort || r.Kind == RuleBlock:
		return sameDevice && r.Service.InternalPort == svc.InternalPort
	}
	rest, other := r.Service, svc
	rest.InternalClient, other.InternalClient = "", ""
	return sameDevice && rest == other
}

// ServiceKey identifies a service for trust purposes: the same app on the same
// device asking for the same inside port, whatever external port it got.
// Digits are stripped from the description because apps put changing numbers
// in it ("NAT-PMP 8000 tcp", "Teredo 51234").
type ServiceKey struct {
	InternalClient string
	Protocol       string
	InternalPort   uint16
	Description    string
}

// ServiceOf returns the service key of a mapping.
func ServiceOf(m watcher.Mapping) ServiceKey {
	return ServiceKey{
		InternalClient: m.InternalClient,
		Protocol:       m.Protocol,
		InternalPort:   m.InternalPort,
		Description:    StripDigits(m.Description),
	}
}

// StripDigits removes digits and folds the runs of spaces that removal
// leaves, so "NAT-PMP 8000 tcp" and "NAT-PMP 8001 tcp" compare equal.
func StripDigits(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// AlertState is where an alert's question stands.
type AlertState string

const (
	// AlertPending: asked, not answered yet.
	AlertPending AlertState = "pending"
	AlertAllowed AlertState = "allowed"
	AlertBlocked AlertState = "blocked"
	// AlertSuperseded: the share changed or a rule decided it before the
	// owner answered; the buttons no longer apply.
	AlertSuperseded AlertState = "superseded"
)

// AlertKind says why doorman asked.
type AlertKind string

const (
	AlertNew      AlertKind = "new"
	AlertChanged  AlertKind = "changed"
	AlertExisting AlertKind = "existing" // open before doorman first watched the router
)

// Alert is one question asked in the chat about one share.
type Alert struct {
	ID    uint64
	Kind  AlertKind
	Share Share // as it was when asked
	// Previous is the mapping before the change, for AlertChanged.
	Previous *watcher.Mapping `json:",omitempty"`
	// Batch is the ID of the first alert of a message that asks about
	// several shares at once (shares open before doorman watched, one
	// service's shares, a busy device's), 0 for an alert with a message
	// of its own from before services.
	Batch uint64
	// Busy marks the first alert of a message about a device that opened
	// more shares than the busy-device limit allows.
	Busy      bool `json:",omitempty"`
	State     AlertState
	CreatedAt time.Time
	ChatID    int64
	MessageID int // 0 until Telegram confirmed the message
	DecidedBy User
	DecidedAt time.Time
	// Note is shown under the alert: why a block failed, what replaced it.
	Note Note `json:",omitzero"`
}

// NoteKind says what a note under an alert or a digest entry tells; bot
// words it.
type NoteKind string

const (
	NoteNone NoteKind = ""
	// NoteChanged: the share changed; a newer message asks about it.
	NoteChanged NoteKind = "superseded-changed"
	// NoteReopenedByOther: the share closed and another device or app
	// opened the port again; a newer message asks about that.
	NoteReopenedByOther NoteKind = "superseded-reopened-by-other"
	// NoteAskedAgain: the question was asked again in a newly paired chat.
	NoteAskedAgain NoteKind = "asked-again"
	// NoteRefused: the router refused to close the share (UPnPCode, if
	// the router gave one).
	NoteRefused NoteKind = "refused"
	// NoteUnreachable: the router could not be reached to close the share
	// (Error says why).
	NoteUnreachable NoteKind = "unreachable"
	// NoteTrustedDevice: everything the share's device opens is trusted.
	NoteTrustedDevice NoteKind = "trusted-device"
	// NoteSeeBelow: the share was not closed, and a message of its own
	// says why (a crowded message has no room for it).
	NoteSeeBelow NoteKind = "see-below"
	// NoteBusyDevice: the device opened too many shares; one message
	// about the whole device asks instead.
	NoteBusyDevice NoteKind = "busy-device"
	// NoteBlockedDevice: everything the share's device opens is blocked.
	NoteBlockedDevice NoteKind = "blocked-device"
	// NoteText is a note stored as text by doorman before notes had
	// kinds; Text holds it as it was written.
	NoteText NoteKind = "text"
)

// Note is what happened to an alert or a digest entry, for bot to word.
type Note struct {
	Kind NoteKind
	// UPnPCode is the router's UPnP error code for NoteRefused, 0 if none.
	UPnPCode int `json:",omitempty"`
	// Error is a short error text for NoteUnreachable.
	Error string `json:",omitempty"`
	// Text is an old note's text for NoteText: HTML under a pending alert
	// or a digest entry, plain text otherwise, as doorman wrote them.
	Text string `json:",omitempty"`
}

// IsZero reports whether there is no note.
func (n Note) IsZero() bool { return n == Note{} }

// UnmarshalJSON reads a note, and the plain string a note was before notes
// had kinds, so that databases of older versions load.
func (n *Note) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*n = Note{}
		if s != "" {
			*n = Note{Kind: NoteText, Text: s}
		}
		return nil
	}
	type plain Note
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*n = Note(p)
	return nil
}

// Message returns the ID of the alert that owns the chat message: the batch
// for batched alerts, the alert itself otherwise.
func (a Alert) Message() uint64 {
	if a.Batch != 0 {
		return a.Batch
	}
	return a.ID
}

// OutboxKind says what an outbox item delivers.
type OutboxKind string

const (
	// OutboxAlert sends the message of an alert (or of a batch); it is
	// rendered when sent, from the alert's state at that time.
	OutboxAlert OutboxKind = "alert"
	// OutboxEdit updates a sent alert message to its current state.
	OutboxEdit OutboxKind = "edit"
	// OutboxNotice sends a notice, rendered when sent (Text, from older
	// versions, as it is).
	OutboxNotice OutboxKind = "notice"
	// OutboxDigest sends page Page of digest DigestID, rendered when sent.
	OutboxDigest OutboxKind = "digest"
	// OutboxDigestEdit updates a sent digest page to its current state.
	OutboxDigestEdit OutboxKind = "digest-edit"
)

// OutboxItem is a message doorman owes the chat. It is written before the
// first attempt and removed only after Telegram confirmed it.
type OutboxItem struct {
	Seq     uint64
	Kind    OutboxKind
	AlertID uint64 `json:",omitempty"` // for alert and edit items: the message owner
	// DigestID and Page name a digest page for digest items.
	DigestID uint64 `json:",omitempty"`
	Page     int    `json:",omitempty"`
	// ChatID is the owner chat when the item was queued. Only edits are
	// sent there (see FollowsOwner); the rest goes to the owner chat of
	// the time it is sent.
	ChatID int64
	// Class says how urgent the item is (see Priority); Enqueue sets it
	// from the kind when the caller does not.
	Class OutboxClass `json:",omitempty"`
	// Notice is what a notice item tells.
	Notice *Notice `json:",omitempty"`
	// Text is the HTML of a notice queued by an older version of doorman,
	// sent as it is.
	Text      string `json:",omitempty"`
	CreatedAt time.Time
	Attempts  int
	LastError string `json:",omitempty"`
}

// NoticeKind says what a notice tells.
type NoticeKind string

const (
	// NoticeClosedAgain: a block rule closed a share again.
	NoticeClosedAgain NoticeKind = "closed-again"
	// NoticeBlockedOpen: a block rule could not close a share (Note says
	// why).
	NoticeBlockedOpen NoticeKind = "blocked-open"
	// NoticeNotClosed: a Block pressed in a crowded message (a batch)
	// failed; Note says why.
	NoticeNotClosed NoticeKind = "not-closed"
	// NoticeStaleNotClosed: a Close pressed in a digest failed; Note says
	// why.
	NoticeStaleNotClosed NoticeKind = "stale-not-closed"
)

// Notice is a message about something doorman did or could not do, for
// bot to word when it sends it.
type Notice struct {
	Kind    NoticeKind
	Mapping watcher.Mapping
	// Note says why a share was not closed.
	Note Note `json:",omitzero"`
	// RuleSince and RuleBy tell since when and by whom a share is blocked.
	RuleSince time.Time `json:",omitzero"`
	RuleBy    User      `json:",omitzero"`
	// Unreported counts the times the rule acted since the last notice.
	Unreported int `json:",omitempty"`
}

// ErrNotFound is returned for a missing rule, alert or outbox item.
var ErrNotFound = errors.New("not found")

// Share returns the stored share with key.
func (t *Tx) Share(key string) (Share, bool, error) {
	var s Share
	ok, err := t.get(bucketShares, []byte(key), &s)
	return s, ok, err
}

// PutShare stores s under its key.
func (t *Tx) PutShare(s Share) error {
	return t.put(bucketShares, []byte(ShareKey(s.Mapping.Key())), s)
}

// DeleteShare forgets a share.
func (t *Tx) DeleteShare(key string) error {
	return t.del(bucketShares, []byte(key))
}

// Shares returns the stored shares of one router, or of all when router is
// empty, in key order.
func (t *Tx) Shares(router string) ([]Share, error) {
	var out []Share
	if router == "" {
		err := each(t, bucketShares, func(_ []byte, s Share) error {
			out = append(out, s)
			return nil
		})
		return out, err
	}
	prefix := []byte(router + "\x00")
	c := t.tx.Bucket(bucketShares).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		s, ok, err := t.Share(string(k))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// PutRule stores r, giving it an ID when it has none.
func (t *Tx) PutRule(r *Rule) error {
	if r.ID == 0 {
		id, err := t.nextID(bucketRules)
		if err != nil {
			return err
		}
		r.ID = id
	}
	return t.put(bucketRules, u64(r.ID), r)
}

// Rule returns the rule with id.
func (t *Tx) Rule(id uint64) (Rule, error) {
	var r Rule
	ok, err := t.get(bucketRules, u64(id), &r)
	if err == nil && !ok {
		err = fmt.Errorf("rule %d: %w", id, ErrNotFound)
	}
	return r, err
}

// DeleteRule forgets a rule.
func (t *Tx) DeleteRule(id uint64) error {
	return t.del(bucketRules, u64(id))
}

// Rules returns every rule, oldest first.
func (t *Tx) Rules() ([]Rule, error) {
	var out []Rule
	err := each(t, bucketRules, func(_ []byte, r Rule) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// RuleFor returns the rule that covers a service on a device with the given
// MAC ("" if unknown); see BestRule.
func (t *Tx) RuleFor(svc ServiceKey, mac string) (Rule, bool, error) {
	rules, err := t.Rules()
	if err != nil {
		return Rule{}, false, err
	}
	if i, ok := BestRule(rules, svc, mac); ok {
		return rules[i], true, nil
	}
	return Rule{}, false, nil
}

// BestRule returns the index of the rule in rules that covers a service on a
// device with the given MAC. Block rules win over trust rules, and a rule
// for the service over one for the whole device.
func BestRule(rules []Rule, svc ServiceKey, mac string) (int, bool) {
	rank := func(r Rule) int {
		n := 0
		if r.Kind == RuleBlock {
			n += 2
		}
		if r.Scope != ScopeDevice {
			n++
		}
		return n
	}
	best := -1
	for i, r := range rules {
		if r.Covers(svc, mac) && (best < 0 || rank(r) > rank(rules[best])) {
			best = i
		}
	}
	return best, best >= 0
}

// PutAlert stores a, giving it an ID when it has none.
func (t *Tx) PutAlert(a *Alert) error {
	if a.ID == 0 {
		id, err := t.nextID(bucketAlerts)
		if err != nil {
			return err
		}
		a.ID = id
	}
	if err := t.indexAlert(a); err != nil {
		return err
	}
	return t.put(bucketAlerts, u64(a.ID), a)
}

// Alert returns the alert with id.
func (t *Tx) Alert(id uint64) (Alert, error) {
	var a Alert
	ok, err := t.get(bucketAlerts, u64(id), &a)
	if err == nil && !ok {
		err = fmt.Errorf("alert %d: %w", id, ErrNotFound)
	}
	return a, err
}

// MessageAlerts returns the alerts shown in the message owned by alert id:
// the alert alone, or every alert of its batch in order.
func (t *Tx) MessageAlerts(id uint64) ([]Alert, error) {
	first, err := t.Alert(id)
	if err != nil {
		return nil, err
	}
	if first.Batch != first.ID {
		return []Alert{first}, nil
	}
	out := []Alert{first}
	c := t.tx.Bucket(bucketAlerts).Cursor()
	for k, _ := c.Seek(u64(id + 1)); k != nil; k, _ = c.Next() {
		a, err := t.Alert(binary.BigEndian.Uint64(k))
		if err != nil {
			return nil, err
		}
		if a.Batch == id {
			out = append(out, a)
		}
	}
	return out, nil
}

// Alerts returns every alert, oldest first.
func (t *Tx) Alerts() ([]Alert, error) {
	var out []Alert
	err := each(t, bucketAlerts, func(_ []byte, a Alert) error {
		out = append(out, a)
		return nil
	})
	return out, err
}

// DeleteAlert forgets an alert.
func (t *Tx) DeleteAlert(id uint64) error {
	if err := t.indexAlert(&Alert{ID: id, State: AlertSuperseded}); err != nil {
		return err
	}
	return t.del(bucketAlerts, u64(id))
}

// Enqueue adds an item to the end of the outbox.
func (t *Tx) Enqueue(it *OutboxItem) error {
	id, err := t.nextID(bucketOutbox)
	if err != nil {
		return err
	}
	it.Seq = id
	if it.Class == ClassUnknown {
		it.Class = ClassOf(it.Kind)
	}
	return t.put(bucketOutbox, u64(id), it)
}

// NextOutbox returns the oldest item of the outbox.
func (t *Tx) NextOutbox() (OutboxItem, bool, error) {
	k, _ := t.tx.Bucket(bucketOutbox).Cursor().First()
	if k == nil {
		return OutboxItem{}, false, nil
	}
	var it OutboxItem
	ok, err := t.get(bucketOutbox, k, &it)
	return it, ok, err
}

// Outbox returns every item in the order they will be sent.
func (t *Tx) Outbox() ([]OutboxItem, error) {
	var out []OutboxItem
	err := each(t, bucketOutbox, func(_ []byte, it OutboxItem) error {
		out = append(out, it)
		return nil
	})
	return out, err
}

// UpdateOutbox rewrites an item in place (attempt counts, last error).
func (t *Tx) UpdateOutbox(it OutboxItem) error {
	if t.tx.Bucket(bucketOutbox).Get(u64(it.Seq)) == nil {
		return fmt.Errorf("outbox item %d: %w", it.Seq, ErrNotFound)
	}
	return t.put(bucketOutbox, u64(it.Seq), it)
}

// RemoveOutbox deletes a delivered item.
func (t *Tx) RemoveOutbox(seq uint64) error {
	return t.del(bucketOutbox, u64(seq))
}

// StaleReason is one reason a share is worth closing, with the figures
// behind it; bot words it.
type StaleReason struct {
	Kind string // "old", "permanent", "long-lease", "device-away"
	// OpenFor is how long the share has been open ("old", "long-lease"),
	// Lease the lease it has left ("long-lease"), AwayFor how long its
	// device has not been seen ("device-away").
	OpenFor time.Duration `json:",omitempty"`
	Lease   time.Duration `json:",omitempty"`
	AwayFor time.Duration `json:",omitempty"`
	// Text is the reason in words, as older versions of doorman stored it.
	Text string `json:",omitempty"`
}

// DigestItemState is what became of a share listed in a digest.
type DigestItemState string

const (
	DigestOpen    DigestItemState = ""
	DigestClosed  DigestItemState = "closed"
	DigestKept    DigestItemState = "kept"
	DigestRefused DigestItemState = "refused" // the router would not close it
	DigestGone    DigestItemState = "gone"    // closed by someone else meanwhile
)

// DigestItem is one stale share in a digest.
type DigestItem struct {
	ShareKey string
	Mapping  watcher.Mapping
	OpenFor  time.Duration
	Reasons  []StaleReason
	Risk     string `json:",omitempty"` // why the port is risky, "" if not
	Page     int
	State    DigestItemState `json:",omitempty"`
	By       User            `json:",omitempty"`
	Note     Note            `json:",omitzero"`
}

// DigestRule is a rule that matched nothing for a long time.
type DigestRule struct {
	RuleID    uint64
	Kind      RuleKind
	Service   ServiceKey
	IdleFor   time.Duration
	Page      int
	Forgotten bool `json:",omitempty"`
}

// Digest is one sent (or to be sent) digest of stale shares.
type Digest struct {
	ID        uint64
	CreatedAt time.Time
	// Due is the scheduled time it was made for; zero for /digest.
	Due        time.Time `json:",omitempty"`
	ChatID     int64
	OpenShares int
	Items      []DigestItem
	Rules      []DigestRule
	Pages      int
	// MessageIDs holds the Telegram message of each page, 0 until sent.
	MessageIDs []int
}

// PutDigest stores d, giving it an ID when it has none.
func (t *Tx) PutDigest(d *Digest) error {
	if d.ID == 0 {
		id, err := t.nextID(bucketDigests)
		if err != nil {
			return err
		}
		d.ID = id
	}
	return t.put(bucketDigests, u64(d.ID), d)
}

// Digest returns the digest with id.
func (t *Tx) Digest(id uint64) (Digest, error) {
	var d Digest
	ok, err := t.get(bucketDigests, u64(id), &d)
	if err == nil && !ok {
		err = fmt.Errorf("digest %d: %w", id, ErrNotFound)
	}
	return d, err
}
