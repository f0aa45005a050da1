//go:build !linux

package watcher

import (
	"errors"
	"net/netip"
)

func defaultGateways() ([]netip.Addr, error) {
	return nil, errors.New("watcher: finding the default gateway is only implemented on Linux")
}
