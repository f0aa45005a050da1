package watcher

import (
	"fmt"
	"net/netip"
	"os"
)

// defaultGateways returns the IPv4 default gateways from the kernel's routing
// table.
func defaultGateways() ([]netip.Addr, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, fmt.Errorf("watcher: unable to read the routing table: %w", err)
	}
	defer f.Close()
	return parseProcNetRoute(f)
}
