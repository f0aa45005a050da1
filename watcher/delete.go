package watcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// DeleteMapping closes the port share k on gw: DeletePortMapping on the
// connection service k.Service, then GetSpecificPortMappingEntry to see
// whether the mapping is really gone. It returns nil when the mapping is
// gone, also when it was gone before. When the router answered and the
// mapping is still there, the error matches ErrDeleteRefused and the router's
// UPnP error code (if any) is readable with UPnPErrorCode.
//
// The answer to the delete alone does not say what happened, so the check
// decides:
//   - miniupnpd's secure_mode lets a host delete only its own mappings; for
//     another host's mapping 2.3.1 answers 606 Action not authorized (in the
//     lab on IGDv2 and IGDv1 alike). A refusal can also come as 714
//     NoSuchEntryInArray (reported for IGDv1 setups, and what stacks answer
//     that hide other hosts' mappings), the same code as for a mapping that
//     does not exist;
//   - a delete of a mapping that is already gone (its lease ran out, the
//     device closed it) answers 714 too, and that is success;
//   - routers that answer 200 and keep the mapping exist (ISP firmwares that
//     only accept deletes from the mapping's own host).
//
// A delete that got no answer (timeout, connection refused) is not checked:
// a router that does not answer the delete will not answer the check.
func (c *Client) DeleteMapping(ctx context.Context, gw *Gateway, k Key) error {
	svc, k, proto, err := deleteTarget(gw, k)
	if err != nil {
		return err
	}
	return c.deleteAndCheck(ctx, gw, svc, k, proto)
}

// deleteTarget checks that k is a mapping on gw and returns its service,
// k with Router filled in, and its protocol as routers want it.
func deleteTarget(gw *Gateway, k Key) (*Service, Key, string, error) {
	if k.Router != "" && !gw.isRouter(k.Router, true) && !sameURL(k.Router, gw.URL) {
		return nil, k, "", &DeleteError{Key: k, Err: fmt.Errorf("the mapping is on %s, not on this router (%s)", k.Router, gw.ID)}
	}
	if k.Router == "" {
		k.Router = gw.ID
	}
	svc := gw.service(k.Service)
	if svc == nil {
		return nil, k, "", &DeleteError{Key: k, Err: fmt.Errorf("the router offers no %q service", k.Service)}
	}
	proto := normalizeProtocol(k.Protocol)
	if proto == "" || k.ExternalPort == 0 {
		return nil, k, "", &DeleteError{Key: k, Err: fmt.Errorf("not a port mapping key: protocol %q, port %d", k.Protocol, k.ExternalPort)}
	}
	return svc, k, proto, nil
}

func (c *Client) deleteAndCheck(ctx context.Context, gw *Gateway, svc *Service, k Key, proto string) error {
	log := c.logger.With("router", gw.URL, "service", svc.ShortType(), "mapping", k.String())
	delErr := svc.client.DeletePortMappingCtx(ctx, k.RemoteHost, k.ExternalPort, proto)
	if delErr != nil && UPnPErrorCode(delErr) == 0 {
		return &DeleteError{Key: k, Err: delErr}
	}
	gone, checkErr := c.mappingGone(ctx, gw, svc, k, proto)
	switch {
	case checkErr != nil && delErr != nil:
		return &DeleteError{Key: k, Err: fmt.Errorf("%w; then unable to check whether the mapping is still there: %w", delErr, checkErr)}
	case checkErr != nil:
		return &DeleteError{Key: k, Err: fmt.Errorf("the router accepted the delete, but checking that the mapping is gone failed: %w", checkErr)}
	case gone:
		log.Info("port mapping deleted", "delete_code", UPnPErrorCode(delErr))
		return nil
	case delErr != nil:
		log.Warn("router refused to delete a port mapping", "err", delErr)
		return &DeleteError{Key: k, Err: fmt.Errorf("%w: the mapping is still there: %w", ErrDeleteRefused, delErr)}
	default:
		log.Warn("router accepted a delete but still holds the port mapping")
		return &DeleteError{Key: k, Err: fmt.Errorf("%w: the router accepted DeletePortMapping but still holds the mapping", ErrDeleteRefused)}
	}
}

// mappingGone asks the router whether it still holds k.
//
// How routers say "no such mapping" to GetSpecificPortMappingEntry: 714
// NoSuchEntryInArray (the spec, miniupnpd), 713 SpecifiedArrayIndexInvalid
// (some Broadcom stacks reuse the listing's code) or 402 Invalid Args
// (DD-WRT's own daemon). A router that answers with another fault (401
// Invalid Action on firmwares without the action, 501) is asked by listing
// the service instead.
func (c *Client) mappingGone(ctx context.Context, gw *Gateway, svc *Service, k Key, proto string) (bool, error) {
	e, err := svc.client.GetSpecificPortMappingEntryCtx(ctx, k.RemoteHost, k.ExternalPort, proto)
	if err == nil {
		// An answer with no internal client is the placeholder row some
		// routers send instead of a fault; listings skip those too.
		return strings.TrimSpace(e.InternalClient) == "", nil
	}
	switch code := UPnPErrorCode(err); code {
	case CodeNoSuchEntryInArray, CodeArrayIndexInvalid, CodeInvalidArgs:
		return true, nil
	case 0:
		return false, err
	}
	ms, listErr := c.listService(ctx, gw, svc)
	if listErr != nil {
		return false, fmt.Errorf("%w; listing instead failed too: %w", err, listErr)
	}
	for _, m := range ms {
		if m.Protocol == proto && m.ExternalPort == k.ExternalPort && m.RemoteHost == strings.TrimSpace(k.RemoteHost) {
			return false, nil
		}
	}
	return true, nil
}

// service returns gw's connection service of type serviceType, or nil.
func (g *Gateway) service(serviceType string) *Service {
	for _, s := range g.Services {
		if s.Type == serviceType {
			return s
		}
	}
	// A share listed through a twin description (the FRITZ!Box's IGD:1)
	// is in the table of the service watched now.
	for _, s := range g.Services {
		if slices.Contains(s.Twins, serviceType) {
			return s
		}
	}
	return nil
}
