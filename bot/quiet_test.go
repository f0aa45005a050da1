package bot

import (
	"strings"
	"testing"
	"time"
)

func TestParseQuietHours(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"", "", ""},
		{"off", "", ""},
		{"22:00-07:00", "22:00-07:00", ""},
		{" 7:30 - 9:05 ", "07:30-09:05", ""},
		{"00:00-24:00", "00:00-24:00", ""},
		{"22:00", "", "not a span"},
		{"22:00-22:00", "", "same time"},
		{"25:00-07:00", "", "the start is not a time of day"},
		{"22:00-07:60", "", "the end is not a time of day"},
		{"24:01-07:00", "", "the start"},
		{"22-07", "", "the start"},
		{"ab:cd-07:00", "", "the start"},
		{"22:00-7:0", "", "the end"},
		{"-07:00", "", "the start"},
	}
	for _, tt := range tests {
		q, err := ParseQuietHours(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseQuietHours(%q) = %v, %v; want an error with %q", tt.in, q, err, tt.err)
			}
			continue
		}
		if err != nil || q.String() != tt.want || q.On() != (tt.want != "") {
			t.Errorf("ParseQuietHours(%q) = %q (on %v), %v; want %q", tt.in, q, q.On(), err, tt.want)
		}
	}
}

func TestQuietHoursContains(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(clock string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", "2026-12-01 "+clock, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		span  string
		clock string
		want  bool
	}{
		// Across midnight: both sides of it.
		{"22:00-07:00", "21:59", false},
		{"22:00-07:00", "22:00", true},
		{"22:00-07:00", "23:59", true},
		{"22:00-07:00", "00:00", true},
		{"22:00-07:00", "06:59", true},
		{"22:00-07:00", "07:00", false},
		{"22:00-07:00", "12:00", false},
		// Within one day.
		{"13:00-14:30", "12:59", false},
		{"13:00-14:30", "13:00", true},
		{"13:00-14:30", "14:29", true},
		{"13:00-14:30", "14:30", false},
		{"00:00-24:00", "00:00", true},
		{"00:00-24:00", "23:59", true},
		{"", "23:00", false},
	}
	for _, tt := range tests {
		q, err := ParseQuietHours(tt.span)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Contains(at(tt.clock)); got != tt.want {
			t.Errorf("%q contains %s = %v, want %v", tt.span, tt.clock, got, tt.want)
		}
	}
	// The clock of the time's own zone counts: 22:30 in Berlin is 21:30 UTC.
	q, _ := ParseQuietHours("22:00-07:00")
	if !q.Contains(at("22:30")) || q.Contains(at("22:30").UTC()) {
		t.Error("quiet hours do not follow the time's location")
	}
}
