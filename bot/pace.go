package bot

import "time"

// Pace is how fast the outbox writes to one chat. Telegram allows about
// one message a second in a chat, short bursts over it, and 20 a minute in
// a group
// (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this);
// going faster earns 429s whose retry_after holds up every chat, questions
// included. Edits count like messages. The burst is what keeps a Block's
// confirmation (an edit right after the question went out) from waiting a
// second.
type Pace struct {
	// Interval is the average time between two calls about one chat
	// (default 1 s), and Burst how many may go at once before that
	// average holds (default 3).
	Interval time.Duration
	Burst    int
	// GroupInterval is the average time between calls about a group or
	// supergroup (default 3 s: 20 a minute), and GroupBurst how many may
	// go at Interval before that average holds (default 3).
	GroupInterval time.Duration
	GroupBurst    int
}

func (p Pace) withDefaults() Pace {
	if p.Interval <= 0 {
		p.Interval = time.Second
	}
	if p.Burst <= 0 {
		p.Burst = 3
	}
	if p.GroupInterval <= 0 {
		p.GroupInterval = 3 * time.Second
	}
	if p.GroupBurst <= 0 {
		p.GroupBurst = 3
	}
	return p
}

// bucket is a token bucket: tokens grow by one every interval up to size,
// and each call takes one.
type bucket struct {
	tokens float64
	at     time.Time
}

func (b bucket) level(now time.Time, interval time.Duration, size int) float64 {
	if b.at.IsZero() {
		return float64(size)
	}
	if now.Before(b.at) {
		return b.tokens
	}
	return min(float64(size), b.tokens+float64(now.Sub(b.at))/float64(interval))
}

func (b bucket) wait(now time.Time, interval time.Duration, size int) time.Duration {
	l := b.level(now, interval, size)
	if l >= 1 {
		return 0
	}
	// Rounded up, so that the call made after the wait finds a token
	// whatever the float arithmetic did.
	return time.Duration((1-l)*float64(interval)).Truncate(time.Millisecond) + time.Millisecond
}

func (b *bucket) take(now time.Time, interval time.Duration, size int) {
	b.tokens, b.at = b.level(now, interval, size)-1, now
}

// pacer keeps the outbox within Pace, chat by chat. It is not safe for
// concurrent use; the outbox's one loop owns it.
type pacer struct {
	pace  Pace
	chats map[int64]*chatBuckets
}

type chatBuckets struct {
	second, group bucket
}

func newPacer(p Pace) *pacer {
	return &pacer{pace: p.withDefaults(), chats: map[int64]*chatBuckets{}}
}

// isGroup tells groups and supergroups (negative IDs) from private chats.
func isGroup(chat int64) bool { return chat < 0 }

// next returns how long a call about chat has to wait from now.
func (p *pacer) next(now time.Time, chat int64) time.Duration {
	c, ok := p.chats[chat]
	if !ok {
		return 0
	}
	d := c.second.wait(now, p.pace.Interval, p.pace.Burst)
	if isGroup(chat) {
		d = max(d, c.group.wait(now, p.pace.GroupInterval, p.pace.GroupBurst))
	}
	return d
}

// took records a call about chat at now.
func (p *pacer) took(now time.Time, chat int64) {
	c, ok := p.chats[chat]
	if !ok {
		// Forgotten before it is added: a new chat's buckets are full,
		// and forget would drop it with the call just made.
		p.forget(now)
		c = &chatBuckets{}
		p.chats[chat] = c
	}
	c.second.take(now, p.pace.Interval, p.pace.Burst)
	if isGroup(chat) {
		c.group.take(now, p.pace.GroupInterval, p.pace.GroupBurst)
	}
}

// forget drops the chats whose buckets are full again, which is the same
// as not knowing them, so that the map stays as small as the chats written
// to lately.
func (p *pacer) forget(now time.Time) {
	if len(p.chats) < 16 {
		return
	}
	for id, c := range p.chats {
		full := c.second.level(now, p.pace.Interval, p.pace.Burst) >= float64(p.pace.Burst)
		if isGroup(id) {
			full = full && c.group.level(now, p.pace.GroupInterval, p.pace.GroupBurst) >= float64(p.pace.GroupBurst)
		}
		if full {
			delete(p.chats, id)
		}
	}
}
