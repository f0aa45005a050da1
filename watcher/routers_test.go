package watcher

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

var absoluteHost = regexp.MustCompile(`https?://[^/<"\s]+`)

// Every real router description is served from the fake IGD and read the
// way doorman reads a router: the right connection services, requests at the
// control URL the description names (pinned to the router), the SOAPAction
// with the service type the router declared, and the mappings of each
// service listed.
func TestEveryCapturedRouterIsRead(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "routers", "*-rootdesc.xml"))
	if err != nil {
		t.Fatal(err)
	}
	// Descriptions with no connection service doorman can use, and why.
	unusable := map[string]string{
		"dlink-dir655-rootdesc.xml": "libtorrent turned its control URL into a printf template",
	}
	seen := 0
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			igd := newFakeIGD(t)
			igd.description = string(raw)
			hosts := map[string]bool{}
			for _, h := range absoluteHost.FindAllString(string(raw), -1) {
				hosts[h] = true
			}
			for h := range hosts {
				igd.rewriteHosts = append(igd.rewriteHosts, h)
			}
			// Longest first, so that a host with a port is rewritten
			// before the same host without one.
			sort.Slice(igd.rewriteHosts, func(i, j int) bool { return len(igd.rewriteHosts[i]) > len(igd.rewriteHosts[j]) })
			var mu sync.Mutex
			paths := map[string]bool{}
			actions := map[string]bool{}
			igd.handle = func(_ http.ResponseWriter, r *http.Request, action string, _ int) bool {
				mu.Lock()
				defer mu.Unlock()
				paths[r.URL.RequestURI()] = true
				actions[strings.Trim(r.Header.Get("SOAPAction"), `"`)] = true
				return false
			}
			igd.setTable(row("TCP", 32400, "192.168.1.20", 32400, "Plex Media Server"))

			c := testClient(t, Config{})
			gw, err := c.fetchGateway(context.Background(), igd.URL())
			if why, ok := unusable[name]; ok {
				if err == nil {
					t.Fatalf("read a description that should be refused (%s): %+v", why, gw.Services)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(gw.Services) == 0 {
				t.Fatal("no connection service found")
			}
			ms, err := c.ListMappings(context.Background(), gw)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != len(gw.Services) {
				t.Errorf("%d mappings from %d services, want one each", len(ms), len(gw.Services))
			}
			// Requests past the end of a listing may still arrive.
			mu.Lock()
			defer mu.Unlock()
			for _, s := range gw.Services {
				u, err := url.Parse(s.ControlURL)
				if err != nil || u.Host != strings.TrimPrefix(igd.srv.URL, "http://") {
					t.Errorf("control URL %s is not on the router", s.ControlURL)
					continue
				}
				if !paths[u.RequestURI()] {
					t.Errorf("nothing was asked at %s (asked at %v)", u.RequestURI(), paths)
				}
				if !actions[s.Type+"#GetGenericPortMappingEntry"] {
					t.Errorf("no SOAPAction with the declared type %s (got %v)", s.Type, actions)
				}
			}
			for _, m := range ms {
				if m.ExternalPort != 32400 || m.InternalClient != "192.168.1.20" || m.Description != "Plex Media Server" || m.Router != gw.ID {
					t.Errorf("mapping %+v", m)
				}
			}
			if igd.count("GetListOfPortMappings") != 0 {
				t.Error("doorman sent GetListOfPortMappings, which crashes miniupnpd 2.3.1")
			}
			seen++
		})
	}
	if want := len(files) - len(unusable); seen != want || want < 18 {
		t.Errorf("read %d of %d descriptions", seen, want)
	}
}
