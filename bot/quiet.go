package bot

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// QuietHours is a daily span of wall-clock time in which questions about
// ordinary shares arrive without a sound. The zero value is off.
type QuietHours struct {
	// start and end are minutes after midnight; the span includes start
	// and excludes end, and crosses midnight when end < start.
	start, end int
	on         bool
}

// ParseQuietHours reads a span such as "22:00-07:00". An empty string is
// off.
func ParseQuietHours(s string) (QuietHours, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "off") {
		return QuietHours{}, nil
	}
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return QuietHours{}, fmt.Errorf("%q is not a span of hours such as 22:00-07:00", s)
	}
	start, err := parseClock(from)
	if err != nil {
		return QuietHours{}, fmt.Errorf("%q: the start %w", s, err)
	}
	end, err := parseClock(to)
	if err != nil {
		return QuietHours{}, fmt.Errorf("%q: the end %w", s, err)
	}
	if start == end {
		return QuietHours{}, fmt.Errorf("%q starts and ends at the same time; leave it empty to turn quiet hours off", s)
	}
	return QuietHours{start: start, end: end, on: true}, nil
}

var errClock = errors.New("is not a time of day such as 07:00")

// parseClock reads "HH:MM" (or "H:MM"), 00:00 to 24:00.
func parseClock(s string) (int, error) {
	s = strings.TrimSpace(s)
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 {
		return 0, errClock
	}
	hours, minutes := 0, 0
	for _, c := range h {
		if c < '0' || c > '9' {
			return 0, errClock
		}
		hours = hours*10 + int(c-'0')
	}
	for _, c := range m {
		if c < '0' || c > '9' {
			return 0, errClock
		}
		minutes = minutes*10 + int(c-'0')
	}
	if minutes > 59 || hours > 24 || (hours == 24 && minutes != 0) {
		return 0, errClock
	}
	return hours*60 + minutes, nil
}

// On reports whether quiet hours are set at all.
func (q QuietHours) On() bool { return q.on }

// Contains reports whether t, read in its own location, falls in the span.
// Wall-clock time counts, so the span follows daylight saving time.
func (q QuietHours) Contains(t time.Time) bool {
	if !q.on {
		return false
	}
	now := t.Hour()*60 + t.Minute()
	if q.start < q.end {
		return now >= q.start && now < q.end
	}
	return now >= q.start || now < q.end
}

// String returns the span as ParseQuietHours reads it, "" when off.
func (q QuietHours) String() string {
	if !q.on {
		return ""
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", q.start/60, q.start%60, q.end/60, q.end%60)
}
