package watcher

// What a Watcher is told (WatchConfig) and what it hands out (Snapshot,
// ServiceStatus); the Watcher itself is in registry.go.

import (
	"context"
	"time"
)

// Reasons for a listing, in Snapshot.Reason.
const (
	// ReasonStart is the first listing of a service.
	ReasonStart = "start"
	// ReasonEvent follows a NOTIFY from the router.
	ReasonEvent = "event"
	// ReasonPoll is a timed listing: PollInterval without events,
	// SafetyPollInterval with them, and the listing that follows a
	// subscription made after events had stopped.
	ReasonPoll = "poll"
	// ReasonRouterRestart follows a router restart.
	ReasonRouterRestart = "router-restart"
	// ReasonRefresh was asked for with Refresh or DeleteMapping.
	ReasonRefresh = "refresh"
)

// Defaults for WatchConfig.
const (
	DefaultPollInterval        = 30 * time.Second
	DefaultSafetyPollInterval  = 5 * time.Minute
	DefaultSubscriptionTimeout = 1800 * time.Second
)

// WatchConfig configures a Watcher. Zero values mean the defaults.
type WatchConfig struct {
	// PollInterval is how often each service is listed when events do not
	// work (default 30s).
	PollInterval time.Duration
	// SafetyPollInterval is how often it is listed even while events work
	// (default 5m).
	SafetyPollInterval time.Duration
	// DisableEvents turns GENA subscriptions off (poll only).
	DisableEvents bool
	// CallbackAddr is the host:port the event callback server listens on;
	// default: doorman's own address towards the gateway (the local address
	// of a UDP socket "connected" to the router's IP — connect sends no
	// packet) and an ephemeral port. Port may be set (":0" style allowed)
	// for firewalls. The host must be an IP address: routers do not
	// resolve names in callbacks, and miniupnpd wants the subscriber's own.
	CallbackAddr string
	// SubscriptionTimeout asked of the router (default 1800s; renew at about
	// half of what the router grants, and at least a few seconds before
	// expiry).
	SubscriptionTimeout time.Duration
	// OnSnapshot is called after every listing of a service, serially per
	// service; never concurrently for the same service. A slow OnSnapshot
	// delays that service's next listing; events that arrive meanwhile
	// are folded into one listing.
	OnSnapshot func(ctx context.Context, s Snapshot)
}

// Snapshot is one listing of one connection service.
type Snapshot struct {
	Gateway  *Gateway
	Service  *Service
	Mappings []Mapping
	// Complete is false when the listing ended with an error; Mappings then
	// holds what was read. A consumer must not treat missing entries of an
	// incomplete snapshot as gone.
	Complete bool
	Err      error
	Reason   string // "start", "event", "poll", "router-restart", "refresh"
	// Time is when the listing ended.
	Time time.Time
}

// ServiceStatus says how one service is being watched.
type ServiceStatus struct {
	Router      string // the router's identity (Gateway.ID)
	URL         string // its description URL
	Service     string // service type
	Events      bool   // subscription active
	EventsError string // why not, when not
	LastList    time.Time
	LastError   string
}
