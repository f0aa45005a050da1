package watcher

import (
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/internal/lab"
)

// A device takes over a port after doorman listed another device's share on
// it: deleting the share as listed leaves the new one alone, and once that
// one is listed, it can be deleted.
func TestLabDeleteListedMappingLeavesANewDevicesShare(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{Devices: 2})
	dev1, dev2 := l.DeviceIP(1), l.DeviceIP(2)
	listing := func() (Mapping, bool) {
		for _, e := range lab.ParseUpnpcList(l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-l")) {
			if e.Protocol == "TCP" && e.ExternalPort == 18080 {
				return Mapping{Router: l.IGDURL, Service: ipConn2, Protocol: "TCP", ExternalPort: 18080,
					InternalClient: e.InternalClient, InternalPort: uint16(e.InternalPort), Description: e.Description}, true
			}
		}
		return Mapping{}, false
	}
	del := func(m Mapping) labEvent {
		c := startLabChild(t, l, labChildSpec{Mode: "delete", IGDURL: l.IGDURL, Listed: &m})
		return c.next(30*time.Second, "delete result", func(e labEvent) bool { return e.Type == "delete" })
	}

	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "device A", "-a", dev1, "8080", "18080", "TCP")
	listedA, ok := listing()
	if !ok || listedA.InternalClient != dev1 {
		t.Fatalf("upnpc -l does not show device A's share: %+v", listedA)
	}
	// After the listing, A closes its share and B opens the same port.
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-d", "18080", "TCP")
	l.Run(t, "dev2", "upnpc", "-u", l.IGDURL, "-e", "device B", "-a", dev2, "9090", "18080", "TCP")

	e := del(listedA)
	t.Logf("delete of A's share as listed: err=%q changed=%v", e.Err, e.Changed)
	if !e.Changed {
		t.Errorf("delete of A's listed share: err=%q, want ErrMappingChanged", e.Err)
	}
	now, ok := listing()
	if !ok || now.InternalClient != dev2 || now.InternalPort != 9090 {
		t.Fatalf("B's share is gone or changed: %+v (present %v)", now, ok)
	}

	if e := del(now); e.Err != "" {
		t.Fatalf("delete of B's share as listed: %s", e.Err)
	}
	if m, ok := listing(); ok {
		t.Errorf("B's share is still there after its delete: %+v", m)
	}
}
