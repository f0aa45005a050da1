package watcher

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

func TestAddressesTowards(t *testing.T) {
	tests := []struct {
		name       string
		url        string
		wantRouter string
		wantLocal  string
		wantErr    string
	}{
		{"IPv4 router", "http://127.0.0.1:5000/rootDesc.xml", "127.0.0.1", "127.0.0.1", ""},
		{"IPv4-mapped IPv6", "http://[::ffff:127.0.0.1]:5000/rootDesc.xml", "127.0.0.1", "127.0.0.1", ""},
		{"not a URL", "http://%zz/", "", "", "router URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			router, local, err := addressesTowards(context.Background(), tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if router != netip.MustParseAddr(tt.wantRouter) || local != netip.MustParseAddr(tt.wantLocal) {
				t.Errorf("addressesTowards = %s, %s; want %s, %s", router, local, tt.wantRouter, tt.wantLocal)
			}
		})
	}
}
