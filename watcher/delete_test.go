package watcher

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDeleteMapping(t *testing.T) {
	plex := row("TCP", 32400, "192.168.77.21", 32400, "Plex")
	other := row("UDP", 51413, "192.168.77.22", 51413, "Transmission")
	hang := func(on string) func(w http.ResponseWriter, r *http.Request, action string, index int) bool {
		return func(w http.ResponseWriter, r *http.Request, action string, index int) bool {
			if action != on {
				return false
			}
			<-r.Context().Done()
			return true
		}
	}
	tests := []struct {
		name          string
		rows          []PortMappingEntry
		deleteFault   int
		deleteKeeps   bool
		specificFault int
		handle        func(w http.ResponseWriter, r *http.Request, action string, index int) bool
		key           func(k Key) Key

		wantErr   error // nil, errAny, or an errors.Is target
		wantCode  int
		wantRows  int
		wantCalls map[string]int
	}{
		{
			name: "deleted", rows: []PortMappingEntry{plex, other},
			wantRows:  1,
			wantCalls: map[string]int{"DeletePortMapping": 1, "GetSpecificPortMappingEntry": 1},
		},
		{
			name: "already gone: 714 to the delete, 714 to the check", rows: []PortMappingEntry{other},
			wantRows: 1,
		},
		{
			name: "refused with 606 (miniupnpd secure_mode, IGDv2)", rows: []PortMappingEntry{plex},
			deleteFault: 606,
			wantErr:     ErrDeleteRefused, wantCode: 606, wantRows: 1,
		},
		{
			name: "714 but still there (miniupnpd secure_mode, IGDv1)", rows: []PortMappingEntry{plex},
			deleteFault: 714,
			wantErr:     ErrDeleteRefused, wantCode: 714, wantRows: 1,
		},
		{
			name: "200 but still there", rows: []PortMappingEntry{plex},
			deleteKeeps: true,
			wantErr:     ErrDeleteRefused, wantRows: 1,
		},
		{
			name: "check answers 713: gone", rows: []PortMappingEntry{plex},
			specificFault: 713, wantRows: 0,
		},
		{
			name: "check answers 402: gone", rows: []PortMappingEntry{plex},
			specificFault: 402, wantRows: 0,
		},
		{
			name: "check answers 401 Invalid Action: a listing decides it is gone", rows: []PortMappingEntry{plex, other},
			specificFault: 401, wantRows: 1,
			wantCalls: map[string]int{"GetGenericPortMappingEntry": 2},
		},
		{
			name: "check answers 501 and a listing shows it still there", rows: []PortMappingEntry{plex},
			deleteKeeps: true, specificFault: 501,
			wantErr: ErrDeleteRefused, wantRows: 1,
		},
		{
			name: "delete hangs: timeout, not a refusal", rows: []PortMappingEntry{plex},
			handle:  hang("DeletePortMapping"),
			wantErr: context.DeadlineExceeded, wantRows: 1,
			wantCalls: map[string]int{"GetSpecificPortMappingEntry": 0},
		},
		{
			name: "check hangs after the delete: an error, not a refusal", rows: []PortMappingEntry{plex},
			handle:  hang("GetSpecificPortMappingEntry"),
			wantErr: context.DeadlineExceeded, wantRows: 0,
		},
		{
			name: "unknown service", rows: []PortMappingEntry{plex},
			key:     func(k Key) Key { k.Service = "urn:schemas-upnp-org:service:WANPPPConnection:1"; return k },
			wantErr: errAny, wantRows: 1,
			wantCalls: map[string]int{"DeletePortMapping": 0},
		},
		{
			name: "key of another router", rows: []PortMappingEntry{plex},
			key:     func(k Key) Key { k.Router = "http://192.0.2.1:5000/rootDesc.xml"; return k },
			wantErr: errAny, wantRows: 1,
			wantCalls: map[string]int{"DeletePortMapping": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			igd := newFakeIGD(t)
			igd.description = miniupnpdDescription
			igd.setTable(tt.rows...)
			igd.deleteFault, igd.deleteKeeps, igd.specificFault = tt.deleteFault, tt.deleteKeeps, tt.specificFault
			igd.handle = tt.handle
			c := testClient(t, Config{RequestTimeout: 300 * time.Millisecond})
			gw := gatewayOf(t, c, igd.URL())
			k := Key{Router: gw.URL, Service: ipConn2, Protocol: "TCP", ExternalPort: 32400}
			if tt.key != nil {
				k = tt.key(k)
			}

			start := time.Now()
			err := c.DeleteMapping(context.Background(), gw, k)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("DeleteMapping took %s", took)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("DeleteMapping: %v", err)
			case tt.wantErr == errAny && err == nil,
				tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("DeleteMapping error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				var de *DeleteError
				if !errors.As(err, &de) || de.Key != k {
					t.Errorf("error %v is not a *DeleteError for %v", err, k)
				}
				if tt.wantErr != ErrDeleteRefused && errors.Is(err, ErrDeleteRefused) {
					t.Errorf("error %v counts as a refusal", err)
				}
				if !strings.Contains(err.Error(), "TCP 32400") {
					t.Errorf("error %q does not name the mapping", err)
				}
			}
			if got := UPnPErrorCode(err); got != tt.wantCode {
				t.Errorf("UPnPErrorCode = %d, want %d (%v)", got, tt.wantCode, err)
			}
			if got := len(igd.rows()); got != tt.wantRows {
				t.Errorf("router holds %d rows, want %d", got, tt.wantRows)
			}
			for action, n := range tt.wantCalls {
				if got := igd.count(action); got != n && !(action == "GetGenericPortMappingEntry" && got >= n) {
					t.Errorf("%d %s requests, want %d", got, action, n)
				}
			}
		})
	}
}

func TestDeleteMappingSendsKey(t *testing.T) {
	igd := newFakeIGD(t)
	igd.description = miniupnpdDescription
	igd.setTable(row("UDP", 9000, "192.168.77.22", 9000, "NAT-PMP 9000 udp"))
	c := testClient(t, Config{})
	gw := gatewayOf(t, c, igd.URL())
	// Protocol in lower case and no Router: both are filled in.
	err := c.DeleteMapping(context.Background(), gw, Key{Service: ipConn2, Protocol: "udp", ExternalPort: 9000})
	if err != nil {
		t.Fatalf("DeleteMapping: %v", err)
	}
	if got := igd.actions(); len(got) != 2 || !strings.HasSuffix(got[0], "#DeletePortMapping\"") || !strings.HasSuffix(got[1], "#GetSpecificPortMappingEntry\"") {
		t.Errorf("actions = %q", got)
	}
}
