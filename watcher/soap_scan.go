package watcher

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// scanEntryResponse reads a GetGenericPortMappingEntry answer written the
// way routers write it, without encoding/xml: a listing sends one request per
// mapping, and encoding/xml takes about 22 µs an answer where this takes 2 µs
// (BenchmarkScanEntryResponse). It is what holds doorman list within 1.5x
// of upnpc -l at 320 mappings (deploy/lab/bench-list.sh, 2-core lab VM
// shared with other work): with it 51-68 ms against upnpc's 38-48 ms, a
// ratio of 1.32-1.42; without it 63-78 ms, 1.45-1.66.
//
// It is a fast path, never the only path. It takes only what it reads
// exactly as decodeSOAPBody does: UTF-8, an optional XML declaration,
// Envelope, Body and the response element with simple fields. Anything else
// (another charset, a SOAP header, comments, CDATA, character references,
// attributes or elements inside a field, a field given twice, a Fault) makes
// it return ok false, and the caller decodes the answer with encoding/xml.
// FuzzScanEntryResponse holds the two to the same result.
func scanEntryResponse(body []byte) (e PortMappingEntry, ok bool) {
	if !utf8.Valid(body) {
		return PortMappingEntry{}, false
	}
	s := xmlScanner{b: body}
	if !s.declaration() {
		return PortMappingEntry{}, false
	}
	// Envelope, then Body in the SOAP envelope namespace, each declaring
	// what namespaces it likes.
	var ns nsScope
	env, ok := s.startTag(&ns)
	if !ok || string(env.local) != "Envelope" || env.selfClosing {
		return PortMappingEntry{}, false
	}
	// encoding/xml gives the xml and xmlns prefixes their fixed meanings,
	// whatever a document declares for them.
	bodyTag, ok := s.startTag(&ns)
	if !ok || string(bodyTag.local) != "Body" || bodyTag.selfClosing || string(bodyTag.prefix) == "xml" ||
		string(bodyTag.prefix) == "xmlns" || !ns.is(bodyTag.prefix, soapEnvelopeNS) {
		return PortMappingEntry{}, false
	}
	resp, ok := s.startTag(&ns)
	if !ok || string(resp.local) == "Fault" || resp.selfClosing {
		return PortMappingEntry{}, false
	}
	fields := [...]struct {
		name string
		dst  *string
		seen bool
	}{
		{"NewRemoteHost", &e.RemoteHost, false},
		{"NewExternalPort", &e.ExternalPort, false},
		{"NewProtocol", &e.Protocol, false},
		{"NewInternalPort", &e.InternalPort, false},
		{"NewInternalClient", &e.InternalClient, false},
		{"NewEnabled", &e.Enabled, false},
		{"NewPortMappingDescription", &e.Description, false},
		{"NewLeaseDuration", &e.LeaseDuration, false},
	}
	for {
		s.skipSpace()
		if s.atEndTag() {
			if !s.endTag(resp.qname) {
				return PortMappingEntry{}, false
			}
			return e, true
		}
		name, value, ok := s.simpleElement()
		if !ok {
			return PortMappingEntry{}, false
		}
		for i := range fields {
			f := &fields[i]
			if f.name != string(name) {
				continue
			}
			if f.seen {
				return PortMappingEntry{}, false
			}
			f.seen = true
			*f.dst = string(value)
		}
	}
}

// xmlScanner reads the small subset of XML scanEntryResponse accepts; every
// method reports false for anything outside it.
type xmlScanner struct {
	b []byte
	i int
}

// xmlTag and nsScope hold slices of the scanned body, so that a tag costs
// no allocation.
type xmlTag struct {
	qname, prefix, local []byte
	attrs                int
	selfClosing          bool
}

// nsScope holds the namespace declarations of the open elements; only
// three elements are ever open, so a slice beats a map.
type nsScope struct {
	prefixes, uris [][]byte
}

// is reports whether prefix stands for namespace uri.
func (n *nsScope) is(prefix []byte, uri string) bool {
	for i := len(n.prefixes) - 1; i >= 0; i-- {
		if bytes.Equal(n.prefixes[i], prefix) {
			return string(n.uris[i]) == uri
		}
	}
	// encoding/xml leaves an undeclared prefix as the namespace itself.
	return string(prefix) == uri
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *xmlScanner) skipSpace() {
	for s.i < len(s.b) && isXMLSpace(s.b[s.i]) {
		s.i++
	}
}

// declaration reads an optional leading <?xml ...?> that declares nothing
// but version 1.0, UTF-8 and standalone.
func (s *xmlScanner) declaration() bool {
	if !bytes.HasPrefix(s.b, []byte("<?xml")) {
		return true
	}
	end := bytes.Index(s.b, []byte("?>"))
	if end < 0 {
		return false
	}
	content := string(s.b[len("<?xml"):end])
	if content != "" && !isXMLSpace(content[0]) {
		return false // <?xml-stylesheet and the like
	}
	for _, f := range strings.Fields(content) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || len(v) < 2 || (v[0] != '"' && v[0] != '\'') || v[len(v)-1] != v[0] {
			return false
		}
		v = v[1 : len(v)-1]
		switch {
		case k == "version" && v == "1.0":
		case k == "encoding" && strings.EqualFold(v, "utf-8"):
		case k == "standalone" && (v == "yes" || v == "no"):
		default:
			return false
		}
	}
	s.i = end + len("?>")
	return true
}

// name reads an XML name of ASCII letters, digits, '_', '-', '.' with at
// most one colon, not at either end.
func (s *xmlScanner) name() (qname, prefix, local []byte, ok bool) {
	start := s.i
	colon := -1
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9', c == '-', c == '.':
			if s.i == start || s.i == colon+1 {
				return nil, nil, nil, false
			}
		case c == ':':
			if colon >= 0 || s.i == start {
				return nil, nil, nil, false
			}
			colon = s.i
		default:
			goto done
		}
		s.i++
	}
done:
	if s.i == start || s.i == colon+1 {
		return nil, nil, nil, false
	}
	qname = s.b[start:s.i]
	if colon < 0 {
		return qname, nil, qname, true
	}
	return qname, s.b[start:colon], s.b[colon+1 : s.i], true
}

// startTag reads whitespace, then a start tag whose attributes are plain
// quoted values; xmlns declarations go into ns.
func (s *xmlScanner) startTag(ns *nsScope) (t xmlTag, ok bool) {
	s.skipSpace()
	if s.i >= len(s.b) || s.b[s.i] != '<' {
		return t, false
	}
	s.i++
	if t.qname, t.prefix, t.local, ok = s.name(); !ok {
		return t, false
	}
	for {
		hadSpace := s.i < len(s.b) && isXMLSpace(s.b[s.i])
		s.skipSpace()
		if s.i >= len(s.b) {
			return t, false
		}
		switch s.b[s.i] {
		case '>':
			s.i++
			return t, true
		case '/':
			if s.i+1 < len(s.b) && s.b[s.i+1] == '>' {
				s.i += 2
				t.selfClosing = true
				return t, true
			}
			return t, false
		}
		if !hadSpace {
			return t, false
		}
		qname, prefix, local, ok := s.name()
		if !ok {
			return t, false
		}
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != '=' {
			return t, false
		}
		s.i++
		s.skipSpace()
		if s.i >= len(s.b) || (s.b[s.i] != '"' && s.b[s.i] != '\'') {
			return t, false
		}
		quote := s.b[s.i]
		s.i++
		end := bytes.IndexByte(s.b[s.i:], quote)
		if end < 0 {
			return t, false
		}
		value := s.b[s.i : s.i+end]
		s.i += end + 1
		t.attrs++
		// Entities and whitespace in values are normalised by
		// encoding/xml; '<' is an error there.
		if bytes.ContainsAny(value, "&<\t\n\r") || !xmlChars(value) {
			return t, false
		}
		switch {
		case string(qname) == "xmlns":
			ns.prefixes = append(ns.prefixes, nil)
			ns.uris = append(ns.uris, value)
		case string(prefix) == "xmlns":
			ns.prefixes = append(ns.prefixes, local)
			ns.uris = append(ns.uris, value)
		}
	}
}

func (s *xmlScanner) atEndTag() bool {
	return s.i+1 < len(s.b) && s.b[s.i] == '<' && s.b[s.i+1] == '/'
}

// endTag reads </qname>.
func (s *xmlScanner) endTag(qname []byte) bool {
	if !s.atEndTag() {
		return false
	}
	s.i += 2
	got, _, _, ok := s.name()
	if !ok || !bytes.Equal(got, qname) {
		return false
	}
	s.skipSpace()
	if s.i >= len(s.b) || s.b[s.i] != '>' {
		return false
	}
	s.i++
	return true
}

// simpleElement reads <name>text</name> or <name/> with no attributes and
// returns the local name and the text.
func (s *xmlScanner) simpleElement() (local, text []byte, ok bool) {
	var ns nsScope
	t, ok := s.startTag(&ns)
	if !ok || t.attrs > 0 {
		return nil, nil, false
	}
	if t.selfClosing {
		return t.local, nil, true
	}
	end := bytes.IndexByte(s.b[s.i:], '<')
	if end < 0 {
		return nil, nil, false
	}
	raw := s.b[s.i : s.i+end]
	s.i += end
	text, ok = xmlText(raw)
	if !ok || !s.endTag(t.qname) {
		return nil, nil, false
	}
	return t.local, text, true
}

// xmlText decodes character data that holds no '\r' (encoding/xml rewrites
// line ends), no character references, no "]]>" (an error outside CDATA)
// and only characters XML allows.
func xmlText(raw []byte) ([]byte, bool) {
	if bytes.Contains(raw, []byte("]]>")) {
		return nil, false
	}
	if bytes.IndexByte(raw, '&') < 0 {
		if !xmlChars(raw) {
			return nil, false
		}
		return raw, true
	}
	var b bytes.Buffer
	b.Grow(len(raw))
	for len(raw) > 0 {
		amp := bytes.IndexByte(raw, '&')
		if amp < 0 {
			amp = len(raw)
		}
		if !xmlChars(raw[:amp]) {
			return nil, false
		}
		b.Write(raw[:amp])
		raw = raw[amp:]
		if len(raw) == 0 {
			break
		}
		semi := bytes.IndexByte(raw, ';')
		if semi < 0 {
			return nil, false
		}
		switch string(raw[1:semi]) {
		case "lt":
			b.WriteByte('<')
		case "gt":
			b.WriteByte('>')
		case "amp":
			b.WriteByte('&')
		case "apos":
			b.WriteByte('\'')
		case "quot":
			b.WriteByte('"')
		default:
			return nil, false
		}
		raw = raw[semi+1:]
	}
	return b.Bytes(), true
}

// xmlChars reports whether valid UTF-8 text holds only characters XML 1.0
// allows, '\r' excepted.
func xmlChars(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += size
	}
	return true
}
