package identify_test

import (
	"testing"

	"github.com/doorman-upnp/doorman/approvals"
	"github.com/doorman-upnp/doorman/identify"
	"github.com/doorman-upnp/doorman/watcher"
)

// The app table names apps, approvals.RiskOf warns about dangerous ports;
// one port is in one table only, so an alert never calls a port both
// "Plex" and "SSH". (An external test package: approvals may come to
// import identify for trust rules that follow a MAC.)
func TestAppPortsAreNotRiskyPorts(t *testing.T) {
	for port := 1; port <= 65535; port++ {
		risk, risky := approvals.RiskOf(uint16(port))
		if !risky {
			continue
		}
		for _, proto := range []string{"TCP", "UDP"} {
			m := watcher.Mapping{Protocol: proto, InternalPort: uint16(port), ExternalPort: uint16(port), Origin: watcher.OriginUPnP}
			if app, ok := identify.AppOf(m); ok {
				t.Errorf("port %d/%s is both %q (%s) and risky (%s)", port, proto, app.Name, app.Why, risk.Service)
			}
		}
	}
}
