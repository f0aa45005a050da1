package watcher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what doorman reads from a router. A real root description is a
// few KiB and a SOAP answer under one; the limits are there for a device that
// sends endless or huge responses.
const (
	maxDescriptionBytes = 512 << 10
	maxSOAPBytes        = 64 << 10
)

// newHTTPClient returns the client for all requests to routers.
//
// Requests to the router never go through a proxy: HTTP_PROXY is for the
// internet, and a proxy would see (and could answer for) the router.
// Redirects are not followed, so a description cannot send doorman to
// another host.
func newHTTPClient(dialer *net.Dialer) *http.Client {
	return &http.Client{
		Transport: &oneShotTransport{
			dialer: dialer,
			tls: &http.Transport{
				Proxy:                 nil,
				DialContext:           dialer.DialContext,
				MaxIdleConnsPerHost:   2,
				IdleConnTimeout:       30 * time.Second,
				ResponseHeaderTimeout: 30 * time.Second,
				DisableCompression:    true,
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// oneShotTransport makes one connection per plain-HTTP request and closes it
// after the response. Router UPnP servers close the connection after every
// answer anyway (miniupnpd, libupnp, the Broadcom stacks), so net/http's
// connection pool has nothing to reuse, and its per-connection goroutines
// made a 320-entry listing of the lab's miniupnpd 20-50 % slower. HTTPS
// (rare on routers) goes through the ordinary transport.
type oneShotTransport struct {
	dialer *net.Dialer
	tls    *http.Transport
}

func (t *oneShotTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return t.tls.RoundTrip(req)
	}
	ctx := req.Context()
	conn, err := t.dialer.DialContext(ctx, "tcp", dialAddr(req.URL))
	if err != nil {
		closeBody(req)
		return nil, err
	}
	stop := interruptOnCancel(ctx, conn)
	fail := func(err error) (*http.Response, error) {
		stop()
		conn.Close()
		return nil, withCtxErr(ctx, err)
	}
	out := req.Clone(ctx)
	out.Close = true
	// The whole request goes out in one write, from a buffer sized for it:
	// requests to a router are small (SOAP calls, SUBSCRIBE, a GET), and
	// the 4 KiB bufio buffers each way were most of what a listing
	// allocated (20.7 KB a GetGenericPortMappingEntry request, now 14.2).
	var wire bytes.Buffer
	wire.Grow(1024 + max(int(out.ContentLength), 0))
	if err := out.Write(&wire); err != nil {
		return fail(err)
	}
	if _, err := conn.Write(wire.Bytes()); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), req)
	if err != nil {
		return fail(err)
	}
	resp.Body = &connBody{ReadCloser: resp.Body, conn: conn, stop: stop}
	return resp, nil
}

// dialAddr is the host:port to dial for u, port 80 when u names none.
func dialAddr(u *url.URL) string {
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "80")
	}
	return u.Host
}

// interruptOnCancel makes cancelling ctx interrupt whatever conn is doing,
// until stop is called.
func interruptOnCancel(ctx context.Context, conn net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}

// withCtxErr puts ctx's error in front of an I/O error that cancelling or
// a deadline caused, so that callers can tell a timeout with errors.Is.
func withCtxErr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return err
}

// newRouterDialer returns the dialer for every connection to a router.
func newRouterDialer() *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// connBody closes the connection with the response body.
type connBody struct {
	io.ReadCloser
	conn net.Conn
	stop func() bool
}

func (b *connBody) Close() error {
	b.stop()
	err := b.ReadCloser.Close()
	b.conn.Close()
	return err
}

// limitedReader fails with ErrResponseTooLarge after max bytes, instead of
// silently truncating like io.LimitReader, so a cut-off document is never
// mistaken for a whole one.
type limitedReader struct {
	r   io.Reader
	max int64
	n   int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n >= l.max {
		// One more byte tells a body of exactly max bytes from a longer one.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, l.max)
		}
		return 0, err
	}
	if rest := l.max - l.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

// newXMLDecoder returns a decoder that reads at most max bytes and accepts the
// 8-bit charsets routers declare (descriptions in ISO-8859-1 exist).
func newXMLDecoder(r io.Reader, max int64) *xml.Decoder {
	d := xml.NewDecoder(&limitedReader{r: r, max: max})
	d.CharsetReader = charsetReader
	return d
}

// charsetReader decodes the charsets a router may declare besides UTF-8.
// Windows-1252 is read as ISO-8859-1, which differs only in 0x80-0x9F, where
// routers put nothing but the odd typographic quote.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return input, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "windows-1252", "cp1252":
		return &latin1Reader{r: input}, nil
	}
	return nil, fmt.Errorf("unsupported charset %q", charset)
}

type latin1Reader struct {
	r   io.Reader
	buf bytes.Buffer
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	if l.buf.Len() == 0 {
		raw := make([]byte, max(len(p)/2, 1))
		n, err := l.r.Read(raw)
		for _, b := range raw[:n] {
			l.buf.WriteRune(rune(b))
		}
		if n == 0 {
			return 0, err
		}
	}
	return l.buf.Read(p)
}

// cleanText makes router-supplied text safe to print and store: invalid UTF-8
// and control characters become U+FFFD, and the result is cut to at most max
// runes. Markup escaping is the job of whoever renders it.
func cleanText(s string, maxRunes int) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if n == maxRunes {
			b.WriteString("…")
			break
		}
		switch {
		case r == utf8.RuneError && size <= 1:
			r = utf8.RuneError
		case r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029:
			r = utf8.RuneError
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// withTimeout bounds one request to the router, so a router that hangs
// cannot hang doorman.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
