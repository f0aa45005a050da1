package watcher

import (
	"context"
	"errors"
	"fmt"

	"github.com/huin/goupnp/soap"
)

// UPnP error codes doorman acts on (UPnP IGD WANIPConnection:2 spec, 2.4.x).
const (
	CodeInvalidArgs        = 402
	CodeActionFailed       = 501
	CodeNotAuthorized      = 606
	CodeArrayIndexInvalid  = 713
	CodeNoSuchEntryInArray = 714
)

var (
	// ErrNoGateway means no Internet Gateway Device could be found.
	ErrNoGateway = errors.New("no router found")
	// ErrResponseTooLarge means a router sent more than doorman reads.
	ErrResponseTooLarge = errors.New("response too large")
	// ErrMalformedEntry means a router kept sending port mapping entries
	// that cannot be read (a port that is not a number, an unknown
	// protocol).
	ErrMalformedEntry = errors.New("malformed port mapping entries")
	// ErrTooManyMappings means a listing stopped at the index cap; the
	// mappings read so far are returned, but the list is not complete.
	ErrTooManyMappings = errors.New("too many port mappings")
	// ErrDeleteRefused means the router answered a DeletePortMapping and
	// still holds the mapping afterwards. The router's UPnP error, if it
	// sent one, stays readable with UPnPErrorCode.
	ErrDeleteRefused = errors.New("router refused to delete the port mapping")
)

// DiscoveryHint says what a caller may suggest when Discover found no
// router: giving the router's description URL (Config.IGDURLs) instead.
type DiscoveryHint int

const (
	// HintNoDefaultGateway: the machine has no default gateway to search
	// at, or it could not be found.
	HintNoDefaultGateway DiscoveryHint = iota + 1
	// HintNotTheGateway: only devices other than the default gateway
	// answered the search; the router may be elsewhere.
	HintNotTheGateway
	// HintNoAnswer: nothing answered the search; the router's UPnP may be
	// off, or it may not answer searches, and the URL skips discovery.
	HintNoAnswer
)

// DiscoveryError is a Discover that found no router where giving its
// description URL would help. Its text names no setting: the caller knows
// what its users call Config.IGDURLs, and adds that as Hint suggests. It
// wraps ErrNoGateway.
type DiscoveryError struct {
	Hint DiscoveryHint
	Err  error
}

func (e *DiscoveryError) Error() string { return e.Err.Error() }
func (e *DiscoveryError) Unwrap() error { return e.Err }

// DeleteError is the error of a delete that did not remove a mapping: Err
// says why, and wraps ErrDeleteRefused when the router refused.
type DeleteError struct {
	Key Key
	Err error
}

func (e *DeleteError) Error() string {
	svc := (&Service{Type: e.Key.Service}).ShortType()
	return fmt.Sprintf("watcher: unable to delete %s on %s (%s): %v", e.Key, e.Key.Router, svc, e.Err)
}

func (e *DeleteError) Unwrap() error { return e.Err }

// UPnPError is a SOAP fault from the router, with the UPnP error code
// readable: 713 ends a listing, 606 and 714 refuse a delete, and so on.
type UPnPError struct {
	Action      string
	Code        int
	Description string
	fault       error
}

func (e *UPnPError) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("router refused %s: UPnP error %d", e.Action, e.Code)
	}
	return fmt.Sprintf("router refused %s: UPnP error %d (%s)", e.Action, e.Code, e.Description)
}

func (e *UPnPError) Unwrap() error { return e.fault }

// UPnPErrorCode returns the UPnP error code in err's chain, or 0.
func UPnPErrorCode(err error) int {
	var ue *UPnPError
	if errors.As(err, &ue) {
		return ue.Code
	}
	return 0
}

// wrapSOAPError turns what goupnp returns into an error whose cause is
// readable. goupnp returns a SOAP fault as *soap.SOAPFaultError but formats
// transport errors with %v, which hides context.DeadlineExceeded; the context
// is asked instead.
func wrapSOAPError(ctx context.Context, action, endpoint string, err error) error {
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) {
		desc := fault.Detail.UPnPError.ErrorDescription
		if desc == "" {
			desc = fault.FaultString
		}
		return &UPnPError{
			Action:      action,
			Code:        fault.Detail.UPnPError.Errorcode,
			Description: cleanText(desc, 200),
			fault:       fault,
		}
	}
	if errors.Is(err, ErrResponseTooLarge) {
		return fmt.Errorf("watcher: unable to %s at %s: %w", action, endpoint, err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("watcher: unable to %s at %s: %w (%v)", action, endpoint, ctxErr, err)
	}
	return fmt.Errorf("watcher: unable to %s at %s: %w", action, endpoint, err)
}
