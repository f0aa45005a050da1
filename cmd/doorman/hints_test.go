package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/doorman-upnp/doorman/watcher"
)

func TestWithIGDURLHint(t *testing.T) {
	discovery := func(h watcher.DiscoveryHint, text string) error {
		return &watcher.DiscoveryError{Hint: h, Err: fmt.Errorf("%w: %s", watcher.ErrNoGateway, text)}
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"no default gateway", discovery(watcher.HintNoDefaultGateway, "this machine has no IPv4 default gateway"),
			"no router found: this machine has no IPv4 default gateway; set DOORMAN_IGD_URL"},
		{"only others answered", discovery(watcher.HintNotTheGateway, "no answer (ignored http://192.168.1.9/, which is not the gateway)"),
			"no router found: no answer (ignored http://192.168.1.9/, which is not the gateway); set DOORMAN_IGD_URL if the router is elsewhere"},
		{"no answer", discovery(watcher.HintNoAnswer, "no answer in 2s; is UPnP enabled on the router?"),
			"no router found: no answer in 2s; is UPnP enabled on the router? set DOORMAN_IGD_URL to skip discovery"},
		{"a hint of a later watcher", discovery(99, "why"), "no router found: why; set DOORMAN_IGD_URL"},
		{"a configured URL that failed", fmt.Errorf("%w: connection refused", watcher.ErrNoGateway), "no router found: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := withIGDURLHint(tt.err)
			if got.Error() != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			if !errors.Is(got, watcher.ErrNoGateway) {
				t.Errorf("%v no longer wraps ErrNoGateway", got)
			}
		})
	}
}
