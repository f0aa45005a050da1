package watcher

import (
	"context"
	"errors"
	"fmt"
)

// DeleteListedMapping deletes the share m from the watched gateway that
// m.Router names (see gatewayFor), confirming first that it still leads
// where it was listed (see Client.DeleteListedMapping), and then has that
// service listed again.
// When the share leads elsewhere now (ErrMappingChanged), the service is
// listed again too: the new share shows in the next snapshot and is asked
// about like any new one. After a refused delete nothing is re-listed, as in
// DeleteMapping.
func (w *Watcher) DeleteListedMapping(ctx context.Context, m Mapping) error {
	g := w.gatewayFor(m.Router)
	if g == nil {
		return &DeleteError{Key: m.Key(), Err: fmt.Errorf("%w: %s is not among the watched routers", ErrNoGateway, m.Router)}
	}
	gw, sw := g.service(m.Service)
	err := w.c.DeleteListedMapping(ctx, gw, m)
	if sw != nil && (err == nil || errors.Is(err, ErrMappingChanged)) {
		sw.signal(ReasonRefresh)
	}
	return err
}
