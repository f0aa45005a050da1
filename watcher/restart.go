package watcher

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

const (
	// checkInterval limits how often announcements without a usable
	// BOOTID make doorman renew its subscriptions to see whether the
	// router still knows them.
	checkInterval = 10 * time.Second
	// byebyeGrace: miniupnpd 2.3.1 stopped within a second of its start
	// sends its byebye burst and then, within a millisecond, the second
	// alive burst it had scheduled 250 ms after the start, with the old
	// BOOTID (seen in the lab). Such an alive is not the router coming back.
	byebyeGrace = time.Second
)

// onSSDP takes an announcement from the router's address.
//
// A restart is an ssdp:alive after an ssdp:byebye or after the
// subscriptions were lost, one with a BOOTID other than the last, or one
// that moves the description to another URL on the same host. An alive
// without a BOOTID, or the first one seen, cannot tell: it makes doorman
// renew its subscriptions now, and a router that has forgotten them has
// restarted.
func (g *gatewayWatch) onSSDP(m ssdpMessage) {
	g.mu.Lock()
	gw := g.gw
	owned := slices.Contains(gw.udns, m.uuid())
	loc := sameHostURL(m.Location, gw.URL)
	var why string
	var byebye, check bool
	switch m.NTS {
	case "ssdp:byebye":
		if !owned || g.byebye {
			g.mu.Unlock()
			return
		}
		g.byebye, g.needRestart, byebye = true, true, true
		g.byebyeAt, g.byebyeBoot = time.Now(), m.BootID
	case "ssdp:update":
		if owned && m.NextBootID != "" {
			g.bootID = m.NextBootID
		}
	case "ssdp:alive":
		// Another device on the router's address (a FRITZ!Box's media
		// server) has its own UUID and description.
		if !owned && loc != gw.URL {
			break
		}
		switch {
		case g.byebye && m.BootID == g.byebyeBoot && time.Since(g.byebyeAt) < byebyeGrace:
			// The dying router's last burst; see byebyeGrace.
		case g.byebye && m.BootID != "" && m.BootID == g.byebyeBoot:
			// Back without a new BOOTID, which UDA 1.1 forbids: ask
			// whether it still knows the subscriptions.
			if time.Since(g.lastCheck) >= checkInterval {
				check = true
				g.lastCheck = time.Now()
			}
		case g.byebye:
			why = "the router is back after ssdp:byebye"
		case g.needRestart:
			why = "the router announces itself after its event subscriptions were lost"
		case m.BootID != "" && g.bootID != "" && m.BootID != g.bootID:
			why = fmt.Sprintf("BOOTID.UPNP.ORG changed from %s to %s", g.bootID, m.BootID)
		case owned && loc != "" && loc != gw.URL:
			why = "the router moved its description to " + loc
		case (m.BootID == "" || g.bootID == "") && time.Since(g.lastCheck) >= checkInterval:
			check = true
			g.lastCheck = time.Now()
		}
		if m.BootID != "" {
			g.bootID = m.BootID
		}
		if owned && loc != "" && loc != gw.URL {
			g.nextURL = loc
		}
		if why != "" {
			g.needRestart, g.byebye, g.restartWhy = false, false, why
		}
	}
	var services []*serviceWatch
	for _, sw := range g.services {
		services = append(services, sw)
	}
	g.mu.Unlock()

	switch {
	case byebye:
		g.log.Info("router announced that it is going away (ssdp:byebye)")
		for _, sw := range services {
			sw.eventsLost("the router said goodbye (ssdp:byebye)")
		}
	case why != "":
		g.log.Debug("router restart noticed", "why", why, "bootid", m.BootID)
		poke(g.restart)
	case check:
		for _, sw := range services {
			poke(sw.check)
		}
	}
}

// sameHostURL returns loc if it is an http URL on the host of ref, else "".
// Announcements cannot move doorman to another host: see pinHost.
func sameHostURL(loc, ref string) string {
	if loc == "" {
		return ""
	}
	lu, err := url.Parse(loc)
	if err != nil || (lu.Scheme != "http" && lu.Scheme != "https") {
		return ""
	}
	ru, err := url.Parse(ref)
	if err != nil || !strings.EqualFold(lu.Hostname(), ru.Hostname()) {
		return ""
	}
	return lu.String()
}
