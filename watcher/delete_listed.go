package watcher

// Closing a share as it was listed. Between a listing and a Block press the
// device that opened a share may close it, and another device may open the
// same external port: DeletePortMapping names only the external port, so a
// blind delete would close the other device's share, which nobody was asked
// about. GetSpecificPortMappingEntry right before the delete says who holds
// the port now.
//
// Router quirks handled here:
//   - firmwares without GetSpecificPortMappingEntry answer 401 Invalid
//     Action or 602 Optional Action Not Implemented: their shares are
//     deleted unconfirmed, as before, and the log says so once per service;
//   - "no such mapping" comes as 714, 713 or 402 (see mappingGone), and a
//     row without an internal client is a placeholder: the share is gone
//     already, which is what the delete wanted.
//
// A device can still take the port in the round trip between the check and
// the delete; UPnP has no conditional delete.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// UPnP error codes of a router that lacks an action.
const (
	codeInvalidAction     = 401
	codeActionUnsupported = 602
)

// ErrMappingChanged means the share to delete no longer leads to the device
// and inside port it was listed with: another device (or the same device for
// another inside port) holds the external port now. Nothing was deleted; the
// share the router holds now is a new one, to be asked about. The error is a
// *MappingChangedError, which names it.
var ErrMappingChanged = errors.New("the port share now leads elsewhere")

// MappingChangedError says what the router holds now instead of the share
// that was to be deleted. It matches ErrMappingChanged.
type MappingChangedError struct {
	Listed Mapping // the share as listed, which was to be deleted
	Now    Mapping // what the router reports for the same key now
}

func (e *MappingChangedError) Error() string {
	return fmt.Sprintf("%v: listed as %s:%d, now %s:%d (%q); nothing deleted", ErrMappingChanged,
		e.Listed.InternalClient, e.Listed.InternalPort, e.Now.InternalClient, e.Now.InternalPort, e.Now.Description)
}

func (e *MappingChangedError) Is(target error) bool { return target == ErrMappingChanged }

// DeleteListedMapping closes the share m, as a listing reported it, on gw.
// Right before the delete, GetSpecificPortMappingEntry confirms that m's
// external port still leads to m.InternalClient and m.InternalPort. If it
// leads elsewhere now, nothing is deleted and the error (a *DeleteError)
// matches ErrMappingChanged. A share that is gone already is success, and
// otherwise it is DeleteMapping: the same errors, the same check afterwards.
func (c *Client) DeleteListedMapping(ctx context.Context, gw *Gateway, m Mapping) error {
	svc, k, proto, err := deleteTarget(gw, m.Key())
	if err != nil {
		return err
	}
	log := c.logger.With("router", gw.URL, "service", svc.ShortType(), "mapping", k.String())
	e, err := svc.client.GetSpecificPortMappingEntryCtx(ctx, k.RemoteHost, k.ExternalPort, proto)
	switch code := UPnPErrorCode(err); {
	case err == nil:
		now, ok, perr := parseEntry(e)
		switch {
		case perr != nil:
			log.Warn("router's answer about the share to delete is unreadable; deleting it unconfirmed", "err", perr)
		case !ok:
			log.Info("port mapping to delete is gone already")
			return nil
		case !sameDestination(m, now):
			now.Router, now.Service = k.Router, k.Service
			log.Warn("port mapping to delete leads to another device now; not deleted",
				"listed", fmt.Sprintf("%s:%d", m.InternalClient, m.InternalPort),
				"now", fmt.Sprintf("%s:%d", now.InternalClient, now.InternalPort))
			return &DeleteError{Key: k, Err: &MappingChangedError{Listed: m, Now: now}}
		}
	case code == CodeNoSuchEntryInArray || code == CodeArrayIndexInvalid || code == CodeInvalidArgs:
		log.Info("port mapping to delete is gone already", "code", code)
		return nil
	case code == codeInvalidAction || code == codeActionUnsupported:
		if _, logged := c.unconfirmedDeletes.LoadOrStore(gw.URL+" "+svc.Type, true); !logged {
			log.Warn("router lacks GetSpecificPortMappingEntry: shares are deleted without confirming that they still lead to the device they were listed with", "code", code)
		}
	case code != 0:
		log.Warn("router did not confirm the share to delete; deleting it unconfirmed", "err", err)
	default:
		return &DeleteError{Key: k, Err: fmt.Errorf("unable to confirm that the share still leads to %s:%d: %w", m.InternalClient, m.InternalPort, err)}
	}
	return c.deleteAndCheck(ctx, gw, svc, k, proto)
}

// sameDestination tells whether now leads where listed did. Addresses are
// compared as addresses where both parse (routers differ in spelling).
func sameDestination(listed, now Mapping) bool {
	if listed.InternalPort != now.InternalPort {
		return false
	}
	a, errA := netip.ParseAddr(strings.TrimSpace(listed.InternalClient))
	b, errB := netip.ParseAddr(strings.TrimSpace(now.InternalClient))
	if errA == nil && errB == nil {
		return a.Unmap() == b.Unmap()
	}
	return strings.EqualFold(strings.TrimSpace(listed.InternalClient), strings.TrimSpace(now.InternalClient))
}
