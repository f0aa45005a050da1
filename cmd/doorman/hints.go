package main

import (
	"errors"
	"fmt"

	"github.com/doorman-upnp/doorman/watcher"
)

// withIGDURLHint adds to a failed discovery what the watcher cannot say:
// the name of the setting that gives the router's URL instead.
func withIGDURLHint(err error) error {
	var de *watcher.DiscoveryError
	if !errors.As(err, &de) {
		return err
	}
	switch de.Hint {
	case watcher.HintNoDefaultGateway:
		return fmt.Errorf("%w; set DOORMAN_IGD_URL", err)
	case watcher.HintNotTheGateway:
		return fmt.Errorf("%w; set DOORMAN_IGD_URL if the router is elsewhere", err)
	case watcher.HintNoAnswer:
		// The watcher's text ends with a question: is UPnP on?
		return fmt.Errorf("%w set DOORMAN_IGD_URL to skip discovery", err)
	}
	return fmt.Errorf("%w; set DOORMAN_IGD_URL", err)
}
