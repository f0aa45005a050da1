package watcher

// GENA, the UPnP eventing protocol (UPnP Device Architecture 1.1, section 4):
// doorman SUBSCRIBEs to a connection service's event URL with a callback URL
// on its own LAN address, and the router sends a NOTIFY there whenever a
// state variable changes. For WANIPConnection that includes
// PortMappingNumberOfEntries, so every mapping added or deleted produces a
// NOTIFY. goupnp has no eventing client; this is a small one.
//
// Router quirks handled here:
//   - miniupnpd sends the initial event (SEQ 0) right after answering the
//     SUBSCRIBE, which can arrive before doorman has read the SID from that
//     answer: NOTIFYs on a service's callback path are accepted while a
//     SUBSCRIBE for it is in flight;
//   - TIMEOUT answers vary: "Second-1800", "second-1800", "Second-infinite",
//     nothing at all, or garbage; see parseTimeout;
//   - miniupnpd writes "Timeout:" and "SID:" in mixed case and appends a
//     CRLF after the body, beyond Content-Length;
//   - header names are sent in upper case as the spec writes them: some
//     embedded HTTP servers match them case-sensitively, and Go would send
//     "Callback" and "Nt".

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

const (
	// maxNotifyBytes bounds a NOTIFY body; miniupnpd's are under 1 KiB.
	maxNotifyBytes = 64 << 10
	// maxNotifyVars bounds the state variables read from one NOTIFY.
	maxNotifyVars = 64
	// maxGENAAnswerBytes bounds what is read of a SUBSCRIBE answer's body
	// (there should be none).
	maxGENAAnswerBytes = 4 << 10
	// assumedSubscriptionTimeout is taken when the router's TIMEOUT cannot
	// be read: short enough that a subscription the router expires sooner
	// is not lost for long, long enough not to flood it with renewals.
	assumedSubscriptionTimeout = 300 * time.Second
	// minSubscriptionTimeout keeps renewals from hammering a router that
	// grants a second or two.
	minSubscriptionTimeout = 2 * time.Second
)

// errNoEventURL means the service has no usable eventSubURL: doorman polls.
var errNoEventURL = errors.New("the router offers no event URL for this service")

// GENAError is an HTTP error status in answer to SUBSCRIBE or UNSUBSCRIBE;
// 412 Precondition Failed to a renewal means the router no longer knows the
// subscription.
type GENAError struct {
	Op     string // "SUBSCRIBE", "renew", "UNSUBSCRIBE"
	URL    string
	Status int
}

func (e *GENAError) Error() string {
	return fmt.Sprintf("watcher: router answered %s at %s with HTTP %d %s", e.Op, e.URL, e.Status, http.StatusText(e.Status))
}

// subscription is what the router granted.
type subscription struct {
	sid     string
	timeout time.Duration
}

// subscribe asks for events of the service at eventURL to be sent to
// callback.
func (c *Client) subscribe(ctx context.Context, eventURL, callback string, timeout time.Duration) (subscription, error) {
	h := http.Header{}
	h["CALLBACK"] = []string{"<" + callback + ">"}
	h["NT"] = []string{"upnp:event"}
	h["TIMEOUT"] = []string{timeoutHeader(timeout)}
	resp, err := c.genaRequest(ctx, "SUBSCRIBE", "SUBSCRIBE", eventURL, h)
	if err != nil {
		return subscription{}, err
	}
	sid, err := readSID(resp.Header.Get("SID"))
	if err != nil {
		return subscription{}, fmt.Errorf("watcher: SUBSCRIBE at %s: %w", eventURL, err)
	}
	return subscription{sid: sid, timeout: parseTimeout(resp.Header.Get("TIMEOUT"), timeout)}, nil
}

// renew extends a subscription. A renewal carries only SID and TIMEOUT: the
// spec forbids CALLBACK and NT in it, and routers answer 400 to them.
func (c *Client) renew(ctx context.Context, eventURL, sid string, timeout time.Duration) (time.Duration, error) {
	h := http.Header{}
	h["SID"] = []string{sid}
	h["TIMEOUT"] = []string{timeoutHeader(timeout)}
	resp, err := c.genaRequest(ctx, "renew", "SUBSCRIBE", eventURL, h)
	if err != nil {
		return 0, err
	}
	return parseTimeout(resp.Header.Get("TIMEOUT"), timeout), nil
}

// unsubscribe ends a subscription.
func (c *Client) unsubscribe(ctx context.Context, eventURL, sid string) error {
	h := http.Header{}
	h["SID"] = []string{sid}
	_, err := c.genaRequest(ctx, "UNSUBSCRIBE", "UNSUBSCRIBE", eventURL, h)
	return err
}

// genaRequest sends one GENA request and returns the answer's headers on
// 200; the body is read (up to a limit) and closed.
func (c *Client) genaRequest(ctx context.Context, op, method, eventURL string, h http.Header) (*http.Response, error) {
	ctx, cancel := withTimeout(ctx, c.requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, eventURL, nil)
	if err != nil {
		return nil, fmt.Errorf("watcher: unable to build %s request for %s: %w", op, eventURL, err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("watcher: unable to %s at %s: %w (%v)", op, eventURL, ctxErr, err)
		}
		return nil, fmt.Errorf("watcher: unable to %s at %s: %w", op, eventURL, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxGENAAnswerBytes))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &GENAError{Op: op, URL: eventURL, Status: resp.StatusCode}
	}
	return resp, nil
}

func timeoutHeader(d time.Duration) string {
	return "Second-" + strconv.Itoa(int(max(d, time.Second)/time.Second))
}

// readSID checks a SID from a router: it goes back into headers, so it must
// be one short line of printable ASCII.
func readSID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("answer carries no SID")
	}
	if len(s) > 256 {
		return "", errors.New("SID longer than 256 bytes")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return "", fmt.Errorf("SID %q has a character that is not printable ASCII", cleanText(s, 64))
		}
	}
	return s, nil
}

// parseTimeout reads a TIMEOUT answer. "infinite" (UDA 1.0; deprecated in
// 1.1) is read as what was asked, so that renewals still check the
// subscription now and then; a missing or unreadable value as
// assumedSubscriptionTimeout, or what was asked if that is shorter.
func parseTimeout(s string, asked time.Duration) time.Duration {
	s = strings.ToLower(strings.TrimSpace(s))
	fallback := min(asked, assumedSubscriptionTimeout)
	rest, ok := strings.CutPrefix(s, "second-")
	if !ok {
		return max(fallback, minSubscriptionTimeout)
	}
	if rest == "infinite" {
		return max(asked, minSubscriptionTimeout)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 32)
	if err != nil || n == 0 {
		return max(fallback, minSubscriptionTimeout)
	}
	return max(time.Duration(n)*time.Second, minSubscriptionTimeout)
}

// renewDelay is when to renew a subscription granted for d: at half of it,
// which is at least a second before it runs out (d is at least
// minSubscriptionTimeout) and leaves time for a fresh subscription when the
// renewal fails.
func renewDelay(d time.Duration) time.Duration {
	return max(d, minSubscriptionTimeout) / 2
}

// parseNotify reads the property set of a NOTIFY:
//
//	<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">
//	  <e:property><PortMappingNumberOfEntries>3</PortMappingNumberOfEntries></e:property>
//	</e:propertyset>
//
// It returns the state variables, their names and values cleaned for logs.
// Doorman re-lists on every event, whatever it says; the values are for
// logs, and a body that is not a property set is refused.
func parseNotify(body []byte) (map[string]string, error) {
	d := newXMLDecoder(bytes.NewReader(body), maxNotifyBytes)
	vars := map[string]string{}
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if depth == 0 {
				return nil, errors.New("no propertyset")
			}
			return nil, errors.New("propertyset cut off")
		}
		if err != nil {
			return nil, fmt.Errorf("malformed propertyset: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1 && t.Name.Local != "propertyset":
				return nil, fmt.Errorf("root element is %q, not propertyset", cleanText(t.Name.Local, 64))
			case depth == 2 && t.Name.Local != "property":
				if err := d.Skip(); err != nil {
					return nil, fmt.Errorf("malformed propertyset: %w", err)
				}
				depth--
			case depth == 3:
				var v struct {
					Text string `xml:",chardata"`
				}
				if err := d.DecodeElement(&v, &t); err != nil {
					return nil, fmt.Errorf("malformed property %q: %w", cleanText(t.Name.Local, 64), err)
				}
				depth--
				if len(vars) < maxNotifyVars {
					vars[cleanText(t.Name.Local, 64)] = cleanText(strings.TrimSpace(v.Text), 256)
				}
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return vars, nil
			}
		}
	}
}

// parseSEQ reads a NOTIFY's SEQ header: a 32-bit event key.
func parseSEQ(s string) (uint32, bool) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	return uint32(v), err == nil
}

// nextSEQ is the event key that follows seq: it wraps to 1, not 0, since 0
// is the initial event only.
func nextSEQ(seq uint32) uint32 {
	if seq == ^uint32(0) {
		return 1
	}
	return seq + 1
}

// seqBefore reports whether SEQ a came before b: NOTIFYs are answered
// before they are handled (see handleNotify), so the router may send the
// next one while the last is still being handled, and two can be handled
// out of order.
func seqBefore(a, b uint32) bool {
	return a != b && b-a < 1<<31
}

// handleNotify is the event callback server. It answers at once and only
// marks the service for listing; a burst of NOTIFYs (one per mapping added)
// becomes one or two listings, never a queue of them.
//
// The answers follow UDA 1.1 4.3.2: 400 for a NOTIFY without NT or NTS,
// 412 for wrong NT/NTS or a SID doorman does not hold. A NOTIFY from any host
// but the router is refused: the callback is on the LAN, and only the
// router's events mean anything.
func (w *Watcher) handleNotify(rw http.ResponseWriter, r *http.Request) {
	if r.Method != "NOTIFY" {
		rw.Header().Set("Allow", "NOTIFY")
		http.Error(rw, "only NOTIFY", http.StatusMethodNotAllowed)
		return
	}
	sw := w.serviceByPath(r.URL.Path)
	if sw == nil {
		http.Error(rw, "no such subscription", http.StatusPreconditionFailed)
		return
	}
	src, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || src.Addr().Unmap() != sw.g.addr {
		sw.log.Warn("refused an event message that does not come from the router", "from", r.RemoteAddr)
		http.Error(rw, "not from the router", http.StatusForbidden)
		return
	}
	nt, nts := r.Header.Get("NT"), r.Header.Get("NTS")
	if nt == "" || nts == "" {
		http.Error(rw, "NT and NTS required", http.StatusBadRequest)
		return
	}
	if strings.TrimSpace(nt) != "upnp:event" || strings.TrimSpace(nts) != "upnp:propchange" {
		http.Error(rw, "not an event", http.StatusPreconditionFailed)
		return
	}
	sid := strings.TrimSpace(r.Header.Get("SID"))
	seq, seqOK := parseSEQ(r.Header.Get("SEQ"))
	if !sw.holdsSID(sid) {
		sw.log.Debug("event for a subscription doorman does not hold", "sid", cleanText(sid, 100))
		http.Error(rw, "unknown SID", http.StatusPreconditionFailed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxNotifyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			sw.log.Warn("refused an oversized event message", "limit", maxNotifyBytes)
			http.Error(rw, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "unreadable body", http.StatusBadRequest)
		return
	}
	vars, err := parseNotify(body)
	if err != nil {
		sw.log.Warn("refused an event message that cannot be read", "err", err)
		http.Error(rw, "bad propertyset", http.StatusBadRequest)
		return
	}
	// The answer goes out before the listing is asked for. miniupnpd drops
	// a change that happens while one of its NOTIFYs is still waiting for
	// an answer (upnp_event_var_change_notify skips a subscriber whose
	// notify is in flight), so only a listing that starts after the router
	// has its answer is sure to see such a change.
	// Without a length, a flushed empty answer would go out chunked, which
	// a small router's HTTP client may not read.
	rw.Header().Set("Content-Length", "0")
	rw.WriteHeader(http.StatusOK)
	if err := http.NewResponseController(rw).Flush(); err != nil {
		sw.log.Debug("could not flush the answer to an event message", "err", err)
	}
	sw.event(sid, seq, seqOK, vars)
}
