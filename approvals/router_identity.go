package approvals

import (
	"fmt"
	"slices"

	"github.com/doorman-upnp/doorman/storage"
)

// adoptRouterLocked names the listing's router by the identity its shares
// are stored under (storage.Tx.AdoptRouter): the one doorman knew it by
// before, when its other description is watched now or it made up a new
// UUID, and in databases of older versions its description URL, whose
// records are moved to the identity now. A move or a restart then never
// asks again about a share doorman knew. Shares listed through a twin
// description's service (l.ServiceTwins) move to the listed service. The
// answer is kept for the engine's life. e.mu must be held.
func (e *Engine) adoptRouterLocked(l Listing) (Listing, error) {
	cached := l.Router + "\x00" + l.Service
	id, ok := e.routerIDs[cached]
	if !ok {
		err := e.db.Update(func(tx *storage.Tx) error {
			var err error
			if id, err = tx.AdoptRouter(l.Router, l.RouterUDNs); err != nil {
				return err
			}
			return tx.RetireTwinServices(id, l.Service, l.ServiceTwins)
		})
		if err != nil {
			return l, fmt.Errorf("approvals: unable to look up router %s: %w", l.Router, err)
		}
		if id != l.Router {
			e.logger.Info("router is known under another identity; its shares and questions stay", "router", l.Router, "known_as", id)
		}
		e.routerIDs[cached] = id
	}
	if id == l.Router {
		return l, nil
	}
	l.Router = id
	l.Mappings = slices.Clone(l.Mappings)
	for i := range l.Mappings {
		l.Mappings[i].Router = id
	}
	return l, nil
}
