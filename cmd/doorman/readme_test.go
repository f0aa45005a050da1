package main

import (
	"os"
	"strings"
	"testing"
)

// The README is what people install from; every setting must be in its
// table, with the flag that overrides it.
func TestREADMEListsEverySetting(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "| `DOORMAN_") {
			name := strings.Trim(strings.Split(line, "|")[1], " `")
			rows[name] = line
		}
	}
	for _, s := range settings() {
		row, ok := rows[s.env]
		if !ok {
			t.Errorf("README's settings table lacks %s", s.env)
			continue
		}
		if s.flag != "" && !strings.Contains(row, "`--"+s.flag+"`") {
			t.Errorf("README gives %s without its flag --%s", s.env, s.flag)
		}
		delete(rows, s.env)
	}
	for name := range rows {
		t.Errorf("README lists %s, which doorman does not read", name)
	}
}
