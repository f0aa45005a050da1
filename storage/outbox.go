package storage

// OutboxClass is how urgent an outbox item is; the outbox sends a lower
// class first and, within a class, the older item first.
type OutboxClass int

const (
	// ClassUnknown is what items queued by older versions of doorman
	// carry; their class follows from their kind (ClassOf).
	ClassUnknown OutboxClass = iota
	// ClassQuestion is a new question: the one message that matters when
	// a device opens something.
	ClassQuestion
	// ClassEdit updates a question already asked.
	ClassEdit
	// ClassNotice tells what doorman did or could not do.
	ClassNotice
	// ClassDigest is a digest page or an update of one.
	ClassDigest
)

// ClassOf returns the class an item of kind k gets when whoever queues it
// gives none.
func ClassOf(k OutboxKind) OutboxClass {
	switch k {
	case OutboxAlert:
		return ClassQuestion
	case OutboxEdit:
		return ClassEdit
	case OutboxNotice:
		return ClassNotice
	}
	return ClassDigest
}

// Priority returns the item's class, for an item from an older version
// the class of its kind.
func (it OutboxItem) Priority() OutboxClass {
	if it.Class != ClassUnknown {
		return it.Class
	}
	return ClassOf(it.Kind)
}

// FollowsOwner reports whether the item goes to whatever chat is the owner
// chat when it is sent: everything but an edit, whose message lives in the
// chat it was sent to.
func (it OutboxItem) FollowsOwner() bool {
	return it.Kind != OutboxEdit && it.Kind != OutboxDigestEdit
}

// SameTarget reports whether two items are edits of the same message, so
// that one delivery, rendered from the current state, does for both.
func (it OutboxItem) SameTarget(o OutboxItem) bool {
	switch {
	case it.Kind != o.Kind:
		return false
	case it.Kind == OutboxEdit:
		return it.AlertID == o.AlertID
	case it.Kind == OutboxDigestEdit:
		return it.DigestID == o.DigestID && it.Page == o.Page
	}
	return false
}
