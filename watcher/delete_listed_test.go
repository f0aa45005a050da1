package watcher

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDeleteListedMapping(t *testing.T) {
	// The real answer of a miniupnpd to GetSpecificPortMappingEntry: TCP
	// 12345 leads to 192.168.10.110:12345.
	capture := readCapture(t, "miniupnpd-unknown-soap-getspecific.xml")
	listed := func(client string, internal uint16) Mapping {
		return Mapping{Service: ipConn2, Protocol: "TCP", ExternalPort: 12345, InternalClient: client, InternalPort: internal, Enabled: true}
	}
	captured := row("TCP", 12345, "192.168.10.110", 12345, "libminiupnpc")
	tests := []struct {
		name          string
		listed        Mapping
		rows          []PortMappingEntry
		captureFirst  bool // the first GetSpecificPortMappingEntry gets the capture
		specificFault int
		handle        func(w http.ResponseWriter, r *http.Request, action string, index int) bool

		wantErr     error // nil, errAny, or an errors.Is target
		wantNow     string
		wantRows    int
		wantDeletes int
		wantLog     string
	}{
		{
			name:   "the same device: deleted",
			listed: listed("192.168.10.110", 12345), rows: []PortMappingEntry{captured}, captureFirst: true,
			wantRows: 0, wantDeletes: 1,
		},
		{
			name:   "the same device, spelt as an IPv4-mapped address",
			listed: listed("::ffff:192.168.10.110", 12345), rows: []PortMappingEntry{captured}, captureFirst: true,
			wantRows: 0, wantDeletes: 1,
		},
		{
			name:   "another device took the port: nothing deleted",
			listed: listed("192.168.10.120", 12345), rows: []PortMappingEntry{captured}, captureFirst: true,
			wantErr: ErrMappingChanged, wantNow: "192.168.10.110", wantRows: 1, wantDeletes: 0,
		},
		{
			name:   "the same device for another inside port: nothing deleted",
			listed: listed("192.168.10.110", 8080), rows: []PortMappingEntry{captured}, captureFirst: true,
			wantErr: ErrMappingChanged, wantNow: "192.168.10.110", wantRows: 1, wantDeletes: 0,
		},
		{
			name:     "gone already: nothing to delete",
			listed:   listed("192.168.10.110", 12345),
			wantRows: 0, wantDeletes: 0,
		},
		{
			name:   "a placeholder row: gone already",
			listed: listed("192.168.10.110", 12345), rows: []PortMappingEntry{row("TCP", 12345, "", 0, "")},
			wantRows: 1, wantDeletes: 0,
		},
		{
			name:   "router without the action (401): deleted unconfirmed, and the log says so",
			listed: listed("192.168.10.110", 12345), rows: []PortMappingEntry{captured}, specificFault: 401,
			wantRows: 0, wantDeletes: 1, wantLog: "router lacks GetSpecificPortMappingEntry",
		},
		{
			name:   "router without the action (602)",
			listed: listed("192.168.10.120", 12345), rows: []PortMappingEntry{captured}, specificFault: 602,
			wantRows: 0, wantDeletes: 1, wantLog: "router lacks GetSpecificPortMappingEntry",
		},
		{
			name:   "another fault (501): deleted unconfirmed",
			listed: listed("192.168.10.110", 12345), rows: []PortMappingEntry{captured}, specificFault: 501,
			wantRows: 0, wantDeletes: 1, wantLog: "did not confirm",
		},
		{
			name:   "the confirmation times out: an error, nothing deleted",
			listed: listed("192.168.10.110", 12345), rows: []PortMappingEntry{captured},
			handle: func(w http.ResponseWriter, r *http.Request, action string, index int) bool {
				if action != "GetSpecificPortMappingEntry" {
					return false
				}
				<-r.Context().Done()
				return true
			},
			wantErr: context.DeadlineExceeded, wantRows: 1, wantDeletes: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			igd := newFakeIGD(t)
			igd.description = miniupnpdDescription
			igd.setTable(tt.rows...)
			igd.specificFault = tt.specificFault
			var specifics atomic.Int32
			igd.handle = tt.handle
			if tt.captureFirst {
				igd.handle = func(w http.ResponseWriter, r *http.Request, action string, index int) bool {
					if action != "GetSpecificPortMappingEntry" || specifics.Add(1) > 1 {
						return false
					}
					w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
					io.WriteString(w, capture)
					return true
				}
			}
			var logs lockedBuffer
			c := New(Config{RequestTimeout: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			gw := gatewayOf(t, c, igd.URL())
			m := tt.listed
			m.Router = gw.URL

			err := c.DeleteListedMapping(context.Background(), gw, m)
			t.Logf("log:\n%s", logs.String())
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("DeleteListedMapping: %v", err)
			case tt.wantErr == errAny && err == nil,
				tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("DeleteListedMapping error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				var de *DeleteError
				if !errors.As(err, &de) || de.Key != m.Key() {
					t.Errorf("error %v is not a *DeleteError for %v", err, m.Key())
				}
				if tt.wantErr != ErrMappingChanged && errors.Is(err, ErrMappingChanged) {
					t.Errorf("error %v counts as a changed share", err)
				}
				if errors.Is(err, ErrDeleteRefused) {
					t.Errorf("error %v counts as a refusal", err)
				}
			}
			if tt.wantNow != "" {
				var mc *MappingChangedError
				if !errors.As(err, &mc) || mc.Now.InternalClient != tt.wantNow || mc.Now.Key() != m.Key() || mc.Listed != m {
					t.Errorf("error %v does not name the share now: %+v", err, mc)
				}
				if !strings.Contains(err.Error(), "nothing deleted") || !strings.Contains(err.Error(), "TCP 12345") {
					t.Errorf("error %q", err)
				}
			}
			if got := len(igd.rows()); got != tt.wantRows {
				t.Errorf("router holds %d rows, want %d", got, tt.wantRows)
			}
			if got := igd.count("DeletePortMapping"); got != tt.wantDeletes {
				t.Errorf("%d DeletePortMapping requests, want %d", got, tt.wantDeletes)
			}
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("the log does not say %q", tt.wantLog)
			}
		})
	}
}

// A router without GetSpecificPortMappingEntry is named in the log once,
// not at every delete.
func TestDeleteListedMappingLogsTheMissingActionOnce(t *testing.T) {
	igd := newFakeIGD(t)
	igd.description = miniupnpdDescription
	igd.setTable(row("TCP", 1000, "192.168.1.20", 1000, "a"), row("TCP", 1001, "192.168.1.20", 1001, "b"))
	igd.specificFault = 401
	var logs lockedBuffer
	c := New(Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	gw := gatewayOf(t, c, igd.URL())
	for _, port := range []uint16{1000, 1001} {
		m := Mapping{Router: gw.URL, Service: ipConn2, Protocol: "TCP", ExternalPort: port, InternalClient: "192.168.1.20", InternalPort: port}
		if err := c.DeleteListedMapping(context.Background(), gw, m); err != nil {
			t.Fatalf("delete %d: %v", port, err)
		}
	}
	if n := strings.Count(logs.String(), "router lacks GetSpecificPortMappingEntry"); n != 1 {
		t.Errorf("the missing action is logged %d times, want once:\n%s", n, logs.String())
	}
	if len(igd.rows()) != 0 {
		t.Errorf("rows left: %v", igd.rows())
	}
}

func TestDeleteListedMappingChecksTheKey(t *testing.T) {
	igd := newFakeIGD(t)
	igd.description = miniupnpdDescription
	igd.setTable()
	c := testClient(t, Config{})
	gw := gatewayOf(t, c, igd.URL())
	for _, m := range []Mapping{
		{Router: "http://192.0.2.1:5000/rootDesc.xml", Service: ipConn2, Protocol: "TCP", ExternalPort: 1},
		{Router: gw.URL, Service: ipConn1, Protocol: "TCP", ExternalPort: 1},
		{Router: gw.URL, Service: ipConn2, Protocol: "SCTP", ExternalPort: 1},
	} {
		var de *DeleteError
		if err := c.DeleteListedMapping(context.Background(), gw, m); !errors.As(err, &de) {
			t.Errorf("DeleteListedMapping(%+v) = %v, want a *DeleteError", m, err)
		}
	}
	if n := len(igd.actions()); n != 0 {
		t.Errorf("%d requests for keys that are not this router's", n)
	}
}
