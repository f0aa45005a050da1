package watcher

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWatchDeleteListedMapping(t *testing.T) {
	igd := newTableIGD(t, row("TCP", 8000, "192.168.77.21", 8000, "x"), row("TCP", 8001, "192.168.77.21", 8001, "y"))
	h := startWatch(t, igd, WatchConfig{})
	s := h.next(3*time.Second, "start", reason(ReasonStart))
	if len(s.Mappings) != 2 {
		t.Fatalf("start: %+v", s.Mappings)
	}
	listed := map[uint16]Mapping{}
	for _, m := range s.Mappings {
		listed[m.ExternalPort] = m
	}

	// Another device takes 8000 after the listing.
	igd.setTable(row("TCP", 8000, "192.168.77.99", 8000, "other"), row("TCP", 8001, "192.168.77.21", 8001, "y"))
	err := h.w.DeleteListedMapping(context.Background(), listed[8000])
	var mc *MappingChangedError
	if !errors.Is(err, ErrMappingChanged) || !errors.As(err, &mc) || mc.Now.InternalClient != "192.168.77.99" {
		t.Fatalf("DeleteListedMapping = %v, want ErrMappingChanged naming 192.168.77.99", err)
	}
	s = h.next(time.Second, "refresh after the changed share", reason(ReasonRefresh))
	if len(s.Mappings) != 2 || len(igd.rows()) != 2 {
		t.Errorf("after the refused delete: snapshot %+v, router %+v", s.Mappings, igd.rows())
	}

	if err := h.w.DeleteListedMapping(context.Background(), listed[8001]); err != nil {
		t.Fatalf("DeleteListedMapping of an unchanged share: %v", err)
	}
	s = h.next(time.Second, "refresh after the delete", reason(ReasonRefresh))
	if len(s.Mappings) != 1 || s.Mappings[0].InternalClient != "192.168.77.99" {
		t.Errorf("after the delete: %+v", s.Mappings)
	}

	m := listed[8001]
	m.Router = "http://192.0.2.1:5000/rootDesc.xml"
	if err := h.w.DeleteListedMapping(context.Background(), m); err == nil || !strings.Contains(err.Error(), "not among the watched") {
		t.Errorf("DeleteListedMapping on an unknown router: %v", err)
	}
}
