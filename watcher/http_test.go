package watcher

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The request as the router receives it: the UDA's header spelling
// (SOAPAction, not net/http's Soapaction), a quoted action, and one
// request per connection.
func TestSOAPRequestOnTheWire(t *testing.T) {
	const st = "urn:schemas-upnp-org:service:WANIPConnection:2"
	var b bytes.Buffer
	writeSOAPRequestBody(&b, st, "GetGenericPortMappingEntry", []soapArg{{"NewPortMappingIndex", "7"}})
	wantBody := b.Bytes()
	raw := make(chan []byte, 1)
	addr := serveOneConn(t, func(c net.Conn) {
		var got bytes.Buffer
		req, err := http.ReadRequest(bufio.NewReader(io.TeeReader(c, &got)))
		if err == nil {
			io.Copy(io.Discard, req.Body)
		}
		raw <- got.Bytes()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	})
	sc := New(Config{RequestTimeout: 2 * time.Second}).newSOAPConnection("http://"+addr+"/ctl/IPConn", st)
	if _, err := sc.post(context.Background(), "GetGenericPortMappingEntry", wantBody); err != nil {
		t.Fatal(err)
	}
	got := <-raw
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(got)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(req.Body)
	if req.Method != "POST" || req.RequestURI != "/ctl/IPConn" || req.Host != addr || !req.Close ||
		!bytes.Contains(got, []byte("\r\nSOAPAction: \""+st+"#GetGenericPortMappingEntry\"\r\n")) ||
		req.Header.Get("Content-Type") != `text/xml; charset="utf-8"` || !bytes.Equal(body, wantBody) {
		t.Errorf("request on the wire:\n%s", got)
	}
}

// post's failure paths, against a server that misbehaves on purpose.
func TestSOAPPostFailures(t *testing.T) {
	tests := []struct {
		name  string
		serve func(c net.Conn)
		check func(t *testing.T, a soapAnswer, err error)
	}{
		{"closes without answering", func(c net.Conn) { readRequest(c) }, func(t *testing.T, a soapAnswer, err error) {
			if err == nil {
				t.Errorf("no error, answer %+v", a)
			}
		}},
		{"not HTTP", func(c net.Conn) { readRequest(c); io.WriteString(c, "SSH-2.0-OpenSSH\r\n") }, func(t *testing.T, a soapAnswer, err error) {
			if err == nil {
				t.Errorf("no error, answer %+v", a)
			}
		}},
		{"body cut short", func(c net.Conn) {
			readRequest(c)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<s:Envelope")
		}, func(t *testing.T, a soapAnswer, err error) {
			if err != nil || a.readErr == nil || a.statusCode != 200 {
				t.Errorf("err %v, answer %+v; want a read error", err, a)
			}
		}},
		{"endless body", func(c net.Conn) {
			readRequest(c)
			io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
			chunk := bytes.Repeat([]byte("x"), 4096)
			for range 40 {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}, func(t *testing.T, a soapAnswer, err error) {
			if err != nil || !errors.Is(a.readErr, ErrResponseTooLarge) || len(a.body) > maxSOAPBytes {
				t.Errorf("err %v, readErr %v, %d bytes; want ErrResponseTooLarge at %d", err, a.readErr, len(a.body), maxSOAPBytes)
			}
		}},
		{"hangs", func(c net.Conn) { readRequest(c); time.Sleep(2 * time.Second) }, func(t *testing.T, a soapAnswer, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err %v, want the deadline", err)
			}
		}},
		{"chunked answer", func(c net.Conn) {
			readRequest(c)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
		}, func(t *testing.T, a soapAnswer, err error) {
			if err != nil || a.readErr != nil || string(a.body) != "hello" {
				t.Errorf("err %v, answer %+v", err, a)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := New(Config{}).newSOAPConnection("http://"+serveOneConn(t, tt.serve)+"/ctl", ipConn2)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			a, err := sc.post(ctx, "GetGenericPortMappingEntry", nil)
			tt.check(t, a, err)
		})
	}
}

// serveOneConn serves one connection on loopback with serve, a router that
// misbehaves on purpose, and returns its address.
func serveOneConn(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	return ln.Addr().String()
}

func readRequest(c net.Conn) {
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err == nil {
		io.Copy(io.Discard, req.Body)
	}
}

// An answer whose envelope is whole counts although the router then claims
// more bytes than it sends, or drops the connection; one cut inside the
// envelope does not.
func TestSOAPAnswerEndsEarly(t *testing.T) {
	whole := lab231Entry
	tests := []struct {
		name   string
		answer string
		ok     bool
	}{
		{"whole envelope, Content-Length too large", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(whole)+10, whole), true},
		{"whole envelope, fast path refused, Content-Length too large", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(whole)+9, strings.Replace(whole, "bench", "<!--c-->bench", 1)), true},
		{"cut inside the envelope", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(whole), whole[:len(whole)/2]), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serveOneConn(t, func(c net.Conn) {
				readRequest(c)
				io.WriteString(c, tt.answer)
			})
			sc := New(Config{RequestTimeout: 2 * time.Second}).newSOAPConnection("http://"+addr+"/ctl/IPConn", ipConn2)
			e, err := sc.GetGenericPortMappingEntryCtx(context.Background(), 0)
			if tt.ok && (err != nil || e.ExternalPort != "20000") {
				t.Errorf("entry %+v, err %v; want the entry", e, err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "reading the answer")) {
				t.Errorf("entry %+v, err %v; want a read error", e, err)
			}
		})
	}
}
