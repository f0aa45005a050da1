package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/doorman-upnp/doorman/internal/lab"
)

// A device on the LAN that answers SSDP searches as if it were the router
// must not be believed: doorman lists the real router's shares and never
// even fetches the impostor's description.
func TestLabFakeGatewayOnTheLAN(t *testing.T) {
	lab.Require(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	dev1 := l.DeviceIP(1)
	l.Run(t, "dev1", "upnpc", "-u", l.IGDURL, "-e", "real share", "-a", dev1, "32400", "32400", "TCP")

	var httpLn net.Listener
	var ssdp *net.UDPConn
	l.InNamespace(t, "dev1", func() (err error) {
		if httpLn, err = net.Listen("tcp", dev1+":0"); err != nil {
			return err
		}
		ssdp, err = net.ListenMulticastUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: 1900})
		return err
	})
	t.Cleanup(func() { httpLn.Close(); ssdp.Close() })

	desc, err := os.ReadFile("../../watcher/testdata/routers/miniupnpd-mobileap9x45-rootdesc.xml")
	if err != nil {
		t.Fatal(err)
	}
	var fetched, answered atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		w.Write(desc)
	})}
	go srv.Serve(httpLn)
	t.Cleanup(func() { srv.Close() })
	location := fmt.Sprintf("http://%s/rootDesc.xml", httpLn.Addr())
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := ssdp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			req := string(buf[:n])
			if !strings.HasPrefix(req, "M-SEARCH") {
				continue
			}
			st := "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
			for _, line := range strings.Split(req, "\r\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "ST") {
					st = strings.TrimSpace(v)
				}
			}
			answered.Add(1)
			resp := "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\nLOCATION: " + location +
				"\r\nSERVER: Linux UPnP/1.1 evil/1.0\r\nST: " + st + "\r\nUSN: uuid:evil-0000::" + st + "\r\n\r\n"
			ssdp.WriteToUDP([]byte(resp), from)
		}
	}()

	stdout, stderr, code := runDoorman(t, l, nil, "list", "--json")
	if code != 0 {
		t.Fatalf("doorman list exited %d: %s", code, stderr)
	}
	var got []mappingJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(got) != 1 || got[0].Router != l.RouterID || got[0].ExternalPort != 32400 {
		t.Errorf("listed %+v, want the real router's one share", got)
	}
	if answered.Load() == 0 {
		t.Fatal("the impostor never saw a search: the test proves nothing")
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("doorman fetched the impostor's description %d times", n)
	}
}
