package watcher

import (
	"context"
	"errors"
	"maps"
	"sync"
)

// RequestErrorKey says which request to a router failed and how.
type RequestErrorKey struct {
	// Action is the SOAP action, e.g. "GetGenericPortMappingEntry".
	Action string
	// Code is the router's UPnP error code, 0 when it sent none (no
	// answer, a timeout, an HTTP error without a SOAP fault).
	Code int
}

// requestErrors counts the SOAP requests routers failed, for
// Client.RequestErrors. The count lives in the Client, and a monitor reads
// it when it wants to, so nobody has to wire a callback through.
type requestErrors struct {
	mu sync.Mutex
	n  map[RequestErrorKey]uint64
}

// note counts err, the outcome of one action. The answers routers give by
// design are not failures: every listing ends with one (713 and its
// variants, see isEndOfList), and every delete is checked with a
// GetSpecificPortMappingEntry that says the mapping is gone. Neither is a
// request the caller abandoned (the requests of a listing still in flight
// when it ends).
func (r *requestErrors) note(ctx context.Context, action string, err error) {
	if r == nil || err == nil || errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	code := UPnPErrorCode(err)
	switch action {
	case "GetGenericPortMappingEntry":
		if isEndOfList(code) {
			return
		}
	case "GetSpecificPortMappingEntry":
		if code == CodeNoSuchEntryInArray || code == CodeArrayIndexInvalid || code == CodeInvalidArgs {
			return
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[RequestErrorKey]uint64{}
	}
	r.n[RequestErrorKey{Action: action, Code: code}]++
}

// RequestErrors returns how many requests to the routers failed since c was
// made, by action and UPnP error code. The fault that ends every listing and
// the one that confirms a deleted mapping is gone are not counted.
func (c *Client) RequestErrors() map[RequestErrorKey]uint64 {
	c.reqErrs.mu.Lock()
	defer c.reqErrs.mu.Unlock()
	return maps.Clone(c.reqErrs.n)
}
