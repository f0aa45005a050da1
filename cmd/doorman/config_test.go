package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/bot"
)

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(t *testing.T, c config)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c config) {
				want := defaultConfig()
				if c.RouterTimeout != want.RouterTimeout || c.DiscoveryTimeout != want.DiscoveryTimeout ||
					c.LogLevel != slog.LevelInfo || c.LogFormat != "text" || c.IGDURLs != nil {
					t.Errorf("got %+v, want the defaults %+v", c, want)
				}
			},
		},
		{
			name: "environment",
			env: map[string]string{
				"DOORMAN_IGD_URL":        " http://192.168.1.1:5000/rootDesc.xml , http://192.168.2.1:49000/igddesc.xml,",
				"DOORMAN_ROUTER_TIMEOUT": "750ms",
				"DOORMAN_LOG_LEVEL":      "debug",
				"DOORMAN_LOG_FORMAT":     "JSON",
			},
			check: func(t *testing.T, c config) {
				if !slices.Equal(c.IGDURLs, []string{"http://192.168.1.1:5000/rootDesc.xml", "http://192.168.2.1:49000/igddesc.xml"}) {
					t.Errorf("IGDURLs = %q", c.IGDURLs)
				}
				if c.RouterTimeout != 750*time.Millisecond || c.LogLevel != slog.LevelDebug || c.LogFormat != "json" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "flags override the environment",
			env:  map[string]string{"DOORMAN_IGD_URL": "http://192.168.1.1:5000/a.xml", "DOORMAN_ROUTER_TIMEOUT": "1s"},
			args: []string{"--igd-url", "http://10.0.0.1:1900/b.xml", "--router-timeout=3s"},
			check: func(t *testing.T, c config) {
				if !slices.Equal(c.IGDURLs, []string{"http://10.0.0.1:1900/b.xml"}) || c.RouterTimeout != 3*time.Second {
					t.Errorf("got %+v", c)
				}
			},
		},
		{name: "URL without scheme", env: map[string]string{"DOORMAN_IGD_URL": "192.168.1.1:5000/rootDesc.xml"}, wantErr: "DOORMAN_IGD_URL: \"192.168.1.1:5000/rootDesc.xml\" is not an http:// URL"},
		{name: "URL of another scheme", args: []string{"--igd-url", "ftp://router/x"}, wantErr: "--igd-url: \"ftp://router/x\" is not an http:// URL"},
		{name: "timeout not a duration", env: map[string]string{"DOORMAN_ROUTER_TIMEOUT": "5"}, wantErr: "DOORMAN_ROUTER_TIMEOUT: \"5\" is not a duration"},
		{name: "timeout out of range", env: map[string]string{"DOORMAN_ROUTER_TIMEOUT": "2h"}, wantErr: "out of range"},
		{name: "discovery shorter than SSDP allows", env: map[string]string{"DOORMAN_DISCOVERY_TIMEOUT": "200ms"}, wantErr: "DOORMAN_DISCOVERY_TIMEOUT: 200ms is out of range"},
		{name: "log level", env: map[string]string{"DOORMAN_LOG_LEVEL": "loud"}, wantErr: "DOORMAN_LOG_LEVEL: \"loud\" is not a log level"},
		{name: "log format", env: map[string]string{"DOORMAN_LOG_FORMAT": "xml"}, wantErr: "DOORMAN_LOG_FORMAT: \"xml\" is not a log format"},
		{
			name: "telegram",
			env: map[string]string{
				"DOORMAN_TELEGRAM_TOKEN":   " 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\n",
				"DOORMAN_TELEGRAM_CHAT_ID": "-1001234567890",
				"DOORMAN_ALLOWED_USERS":    "42, 43",
				"DOORMAN_TELEGRAM_API_URL": "http://127.0.0.1:8081/",
				"DOORMAN_EVENTS":           "off",
				"DOORMAN_CALLBACK_ADDR":    ":47100",
				"STATE_DIRECTORY":          "/var/lib/doorman:/var/lib/other",
			},
			check: func(t *testing.T, c config) {
				if c.TelegramToken != "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" || c.ChatID != -1001234567890 ||
					!slices.Equal(c.AllowedUsers, []int64{42, 43}) || c.TelegramAPIURL != "http://127.0.0.1:8081" ||
					c.Events || c.CallbackAddr != ":47100" || c.DBPath != "/var/lib/doorman/doorman.db" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "run defaults",
			env:  map[string]string{"HOME": "/home/ann"},
			check: func(t *testing.T, c config) {
				if c.DBPath != "/home/ann/.local/state/doorman/doorman.db" || !c.Events || c.PollInterval != 30*time.Second ||
					c.SafetyPoll != 5*time.Minute || c.TelegramAPIURL != "https://api.telegram.org" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{name: "token of the wrong shape", env: map[string]string{"DOORMAN_TELEGRAM_TOKEN": "hunter2-not-a-token"}, wantErr: "DOORMAN_TELEGRAM_TOKEN: does not look like a bot token"},
		{name: "token file missing", env: map[string]string{"DOORMAN_TELEGRAM_TOKEN_FILE": "/nonexistent/token"}, wantErr: "DOORMAN_TELEGRAM_TOKEN_FILE: unable to read the token file"},
		{name: "chat ID", env: map[string]string{"DOORMAN_TELEGRAM_CHAT_ID": "@mychannel"}, wantErr: "DOORMAN_TELEGRAM_CHAT_ID: \"@mychannel\" is not a chat ID"},
		{name: "allowed users", args: []string{"--allowed-users", "42,bob"}, wantErr: "--allowed-users: \"bob\" is not a user ID"},
		{name: "events", env: map[string]string{"DOORMAN_EVENTS": "maybe"}, wantErr: "DOORMAN_EVENTS: \"maybe\" is not on or off"},
		{name: "callback address", env: map[string]string{"DOORMAN_CALLBACK_ADDR": "47100"}, wantErr: "DOORMAN_CALLBACK_ADDR: \"47100\" is not host:port"},
		{name: "API URL", env: map[string]string{"DOORMAN_TELEGRAM_API_URL": "api.telegram.org"}, wantErr: "is not an http(s) URL"},
		{name: "poll interval", env: map[string]string{"DOORMAN_POLL_INTERVAL": "10ms"}, wantErr: "DOORMAN_POLL_INTERVAL: 10ms is out of range"},
		{
			name: "a person's day",
			env:  map[string]string{"DOORMAN_QUIET_HOURS": "22:00-07:00", "DOORMAN_TELEGRAM_TOPIC_ID": "42", "DOORMAN_LANG": "DE"},
			check: func(t *testing.T, c config) {
				if c.QuietHours.String() != "22:00-07:00" || c.TopicID != 42 || c.Lang != bot.German {
					t.Errorf("quiet hours %q, topic %d, lang %q", c.QuietHours, c.TopicID, c.Lang)
				}
			},
		},
		{
			name: "a person's day by default",
			check: func(t *testing.T, c config) {
				if c.QuietHours.On() || c.TopicID != 0 || c.Lang != "" {
					t.Errorf("quiet hours %q, topic %d, lang %q", c.QuietHours, c.TopicID, c.Lang)
				}
			},
		},
		{
			name: "busy device",
			env:  map[string]string{"DOORMAN_BUSY_DEVICE": " 20/30s "},
			check: func(t *testing.T, c config) {
				if c.BusyDevice != (approvals.BusyLimit{Shares: 20, Window: 30 * time.Second}) {
					t.Errorf("busy device %v", c.BusyDevice)
				}
			},
		},
		{
			name: "busy device by default and off",
			args: []string{"--busy-device", "OFF"},
			check: func(t *testing.T, c config) {
				if c.BusyDevice.On() || defaultConfig().BusyDevice != approvals.DefaultBusyLimit {
					t.Errorf("busy device %v, default %v", c.BusyDevice, defaultConfig().BusyDevice)
				}
			},
		},
		{name: "busy device without a time", env: map[string]string{"DOORMAN_BUSY_DEVICE": "5"}, wantErr: "DOORMAN_BUSY_DEVICE: \"5\" is not shares/time"},
		{name: "busy device of no shares", env: map[string]string{"DOORMAN_BUSY_DEVICE": "0/1m"}, wantErr: "DOORMAN_BUSY_DEVICE: \"0/1m\" is not shares/time"},
		{name: "busy device in a blink", args: []string{"--busy-device", "5/10ms"}, wantErr: "--busy-device: \"5/10ms\": the time is not a duration from 1s to 24h"},
		{name: "busy device in a week", env: map[string]string{"DOORMAN_BUSY_DEVICE": "5/168h"}, wantErr: "the time is not a duration from 1s to 24h"},
		{name: "quiet hours", args: []string{"--quiet-hours", "22-7"}, wantErr: "--quiet-hours: \"22-7\": the start is not a time of day"},
		{name: "topic", env: map[string]string{"DOORMAN_TELEGRAM_TOPIC_ID": "general"}, wantErr: "DOORMAN_TELEGRAM_TOPIC_ID: \"general\" is not a topic ID"},
		{name: "language", env: map[string]string{"DOORMAN_LANG": "fr"}, wantErr: "DOORMAN_LANG: \"fr\" is not a language doorman speaks (en or de)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			load := configFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := load(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{"no command", nil, nil, exitUsage, []string{"Usage:", "list", "version"}, nil},
		{"help names every setting", []string{"--help"}, nil, 0, []string{"DOORMAN_IGD_URL", "--igd-url", "DOORMAN_ROUTER_TIMEOUT", "DOORMAN_DISCOVERY_TIMEOUT", "DOORMAN_LOG_LEVEL", "DOORMAN_LOG_FORMAT"}, nil},
		{"list help", []string{"list", "--help"}, nil, 0, []string{"doorman list", "--json", "DOORMAN_IGD_URL"}, nil},
		{"unknown command", []string{"frobnicate"}, nil, exitUsage, nil, []string{`unknown command "frobnicate"`}},
		{"unknown flag", []string{"list", "--colour"}, nil, exitUsage, nil, []string{"colour"}},
		{"stray argument", []string{"list", "now"}, nil, exitUsage, nil, []string{`unexpected argument "now"`}},
		{"bad setting", []string{"list"}, map[string]string{"DOORMAN_ROUTER_TIMEOUT": "soon"}, exitUsage, nil, []string{"doorman: DOORMAN_ROUTER_TIMEOUT"}},
		{"version", []string{"version"}, nil, 0, []string{"doorman dev", "go1."}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, env{
				stdout: &stdout, stderr: &stderr,
				getenv: func(k string) string { return tt.env[k] },
			})
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout does not contain %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr does not contain %q:\n%s", s, stderr.String())
				}
			}
		})
	}
}

func TestFormatLease(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "permanent"},
		{45 * time.Second, "45s"},
		{10*time.Minute + 3*time.Second, "10m3s"},
		{3*time.Hour + 59*time.Minute, "3h59m"},
		{7 * 24 * time.Hour, "7d0h"},
		{604783 * time.Second, "6d23h"},
	}
	for _, tt := range tests {
		if got := formatLease(tt.d); got != tt.want {
			t.Errorf("formatLease(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestPrintErrorIsOneLine(t *testing.T) {
	var b bytes.Buffer
	printError(&b, errorString("first\nsecond\n  third"))
	if got := b.String(); got != "doorman: first; second; third\n" {
		t.Errorf("got %q", got)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// A mistyped token must not end up in an error message or a log.
func TestTokenNeverInErrors(t *testing.T) {
	for _, bad := range []string{"123456789:short", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PAL Dsaw", "notanumber:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"} {
		_, err := checkToken(bad)
		if err == nil {
			t.Errorf("checkToken(%q) accepted it", bad)
			continue
		}
		if _, secret, _ := strings.Cut(bad, ":"); strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains the token", err)
		}
	}
	dir := t.TempDir()
	path := dir + "/token"
	if err := os.WriteFile(path, []byte("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	load := configFlags(fs)
	c, err := load(func(k string) string {
		if k == "DOORMAN_TELEGRAM_TOKEN_FILE" {
			return path
		}
		return ""
	})
	if err != nil || c.TelegramToken != "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" {
		t.Errorf("token file: %q, %v", c.TelegramToken, err)
	}
}
