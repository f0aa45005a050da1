package bot

import (
	"testing"
	"time"
)

func TestPacer(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const private, group = int64(42), int64(-1001234)
	type call struct {
		at   time.Duration
		chat int64
		wait time.Duration // what next says before the call
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"a first call goes at once", []call{{0, private, 0}}},
		{"a private chat gets a burst of three, then one a second", []call{
			{0, private, 0}, {0, private, 0}, {0, private, 0}, {500 * time.Millisecond, private, 500 * time.Millisecond},
			{2 * time.Second, private, 0}, {2200 * time.Millisecond, private, 800 * time.Millisecond},
			{6 * time.Second, private, 0},
		}},
		{"chats are paced apart", []call{{0, private, 0}, {0, private + 1, 0}, {0, group, 0}}},
		{"a group gets a burst of three, then one in three seconds", []call{
			// Three tokens, and one more for the three seconds.
			{0, group, 0}, {time.Second, group, 0}, {2 * time.Second, group, 0}, {3 * time.Second, group, 0},
			{4 * time.Second, group, 2 * time.Second},
			{6 * time.Second, group, 3 * time.Second},
		}},
		{"a group's burst goes at once", []call{{0, group, 0}, {100 * time.Millisecond, group, 0}, {200 * time.Millisecond, group, 0}, {300 * time.Millisecond, group, 2700 * time.Millisecond}}},
		{"twenty a minute in a group", func() []call {
			var cs []call
			for i := range 22 {
				cs = append(cs, call{at: time.Duration(i) * 3 * time.Second, chat: group})
			}
			return cs
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacer(Pace{})
			for i, c := range tt.calls {
				if got := p.next(at(c.at), c.chat); got < c.wait || got > c.wait+time.Millisecond {
					t.Errorf("call %d at %s to %d: wait %s, want %s", i, c.at, c.chat, got, c.wait)
				}
				p.took(at(c.at+c.wait), c.chat)
			}
		})
	}
}

// However the outbox is driven, a group never gets more than 20 calls in
// any minute after the first burst, nor a chat more than one a second after
// its first burst of three.
func TestPacerNeverExceedsTelegramsLimits(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, chat := range []int64{42, -1001234} {
		p := newPacer(Pace{})
		now := t0
		var sent []time.Time
		for range 200 {
			now = now.Add(p.next(now, chat))
			p.took(now, chat)
			sent = append(sent, now)
			now = now.Add(37 * time.Millisecond)
		}
		burst := (Pace{}).withDefaults().Burst
		for i := burst; i < len(sent); i++ {
			// A bucket of burst tokens, one more a second: any
			// burst+1 calls span a second at least, and the whole run
			// keeps to one a second on average.
			if d := sent[i].Sub(sent[i-burst]); d < time.Second {
				t.Errorf("chat %d: calls %d to %d within %s", chat, i-burst, i, d)
			}
		}
		if span := sent[len(sent)-1].Sub(sent[0]); span < time.Duration(len(sent)-burst)*time.Second {
			t.Errorf("chat %d: %d calls in %s, faster than one a second", chat, len(sent), span)
		}
		if isGroup(chat) {
			for i := range sent {
				n := 0
				for j := i; j < len(sent) && sent[j].Sub(sent[i]) < time.Minute; j++ {
					n++
				}
				if groupBurst := (Pace{}).withDefaults().GroupBurst; n > 20+groupBurst {
					t.Errorf("group: %d calls in the minute from call %d", n, i)
				}
			}
			if span := sent[len(sent)-1].Sub(sent[0]); span < time.Duration(len(sent)-4)*3*time.Second {
				t.Errorf("group: %d calls in %s, faster than 20 a minute", len(sent), span)
			}
		}
	}
}

func TestPacerForgetsIdleChats(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := newPacer(Pace{})
	for i := range 100 {
		p.took(t0.Add(time.Duration(i)*time.Minute), int64(i+1))
	}
	if n := len(p.chats); n > 16 {
		t.Errorf("%d chats remembered, want at most 16", n)
	}
}

// A chat first written to while many others are remembered is paced like
// any other: forgetting the idle chats must not forget the new one.
func TestPacerPacesANewChatAmongMany(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := newPacer(Pace{})
	for i := range 20 {
		p.took(t0, int64(i+1))
	}
	burst := (Pace{}).withDefaults().Burst
	for _, chat := range []int64{21, -1001234} {
		// Its whole burst at once: the next call waits for a token.
		for range burst {
			p.took(t0, chat)
		}
		if got := p.next(t0, chat); got < time.Second {
			t.Errorf("chat %d written to %d times just now among %d others: next call waits %s, want a second", chat, burst, len(p.chats)-1, got)
		}
	}
}
