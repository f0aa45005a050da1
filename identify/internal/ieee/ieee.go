// Package ieee reads the IEEE MA-L registry, the list that assigns the first
// three octets of MAC addresses (the OUI) to vendors, into a lookup table, and
// writes and reads the compact form that package identify embeds.
//
// Two forms are read:
//
//   - the registry as IEEE publishes it (oui.txt; Debian ships it in the
//     ieee-data package as /usr/share/ieee-data/oui.txt):
//
//     28-6F-B9   (hex)		Nokia Shanghai Bell Co., Ltd.
//     286FB9     (base 16)		Nokia Shanghai Bell Co., Ltd.
//     (then the address, on lines indented with tabs)
//
//   - the compact form: comment lines starting with '#', then one
//     "286FB9<TAB>Nokia Shanghai Bell" line per prefix, names already short.
//
// Both come from outside doorman (a system file, or a file generated from
// one), so the parsers skip what they do not understand instead of failing,
// and every name is cleaned before anyone shows it.
package ieee

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"iter"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrEmpty is returned when a file holds no usable assignment: it is not a
// registry at all, or an empty one, and must not hide a better source.
var ErrEmpty = errors.New("no MA-L assignments found")

// maxLineBytes bounds one line: the longest line of the real registry is
// about 150 bytes, anything far longer is not the registry.
const maxLineBytes = 64 << 10

// MaxNameRunes bounds a vendor name as doorman shows it.
const MaxNameRunes = 48

// Table maps 24-bit MA-L prefixes to short vendor names. It does not change
// after it is built and is safe for concurrent use.
type Table struct {
	prefixes []uint32 // sorted, unique
	names    []string // names[i] belongs to prefixes[i]
}

// Len returns the number of prefixes in the table.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.prefixes)
}

// Lookup returns the vendor of a 24-bit prefix (the first three octets of a
// MAC address, most significant first).
func (t *Table) Lookup(prefix uint32) (string, bool) {
	if t == nil {
		return "", false
	}
	i := sort.Search(len(t.prefixes), func(i int) bool { return t.prefixes[i] >= prefix })
	if i < len(t.prefixes) && t.prefixes[i] == prefix {
		return t.names[i], true
	}
	return "", false
}

// All yields every prefix and its vendor, in prefix order.
func (t *Table) All() iter.Seq2[uint32, string] {
	return func(yield func(uint32, string) bool) {
		for i, p := range t.prefixes {
			if !yield(p, t.names[i]) {
				return
			}
		}
	}
}

// builder collects assignments. A prefix listed twice with different vendors
// (the registry has a few from the 1980s) is dropped: naming either vendor
// would be a guess.
type builder struct {
	names     map[uint32]string
	ambiguous map[uint32]bool
	// intern shares one string per vendor: Apple, Cisco and Huawei hold
	// about a thousand prefixes each.
	intern map[string]string
}

func newBuilder() *builder {
	return &builder{
		names:     make(map[uint32]string),
		ambiguous: make(map[uint32]bool),
		intern:    make(map[string]string),
	}
}

func (b *builder) add(prefix uint32, name string) {
	if name == "" || placeholder(name) || b.ambiguous[prefix] {
		return
	}
	if old, ok := b.names[prefix]; ok {
		if old != name {
			delete(b.names, prefix)
			b.ambiguous[prefix] = true
		}
		return
	}
	if s, ok := b.intern[name]; ok {
		name = s
	} else {
		b.intern[name] = name
	}
	b.names[prefix] = name
}

func (b *builder) table() (*Table, error) {
	if len(b.names) == 0 {
		return nil, ErrEmpty
	}
	t := &Table{prefixes: make([]uint32, 0, len(b.names))}
	for p := range b.names {
		t.prefixes = append(t.prefixes, p)
	}
	slices.Sort(t.prefixes)
	t.names = make([]string, len(t.prefixes))
	for i, p := range t.prefixes {
		t.names[i] = b.names[p]
	}
	return t, nil
}

// placeholder tells the registry's entries that name no vendor: blocks the
// IEEE split further into MA-M and MA-S assignments (their real owners are in
// other files), and assignments kept private.
func placeholder(name string) bool {
	return strings.EqualFold(name, "IEEE Registration Authority") || strings.EqualFold(name, "Private")
}

// ParseRegistry reads the registry in IEEE's oui.txt form. Lines it does not
// understand (headers, addresses, garbage) are skipped; it fails only when
// reading fails or nothing usable was found.
func ParseRegistry(r io.Reader) (*Table, error) {
	b := newBuilder()
	short := make(map[string]string) // each name is on two lines at least
	err := eachLine(r, func(line []byte) {
		prefix, org, ok := parseRegistryLine(line)
		if !ok {
			return
		}
		name, ok := short[string(org)]
		if !ok {
			name = ShortName(string(org))
			short[string(org)] = name
		}
		b.add(prefix, name)
	})
	if err != nil {
		return nil, fmt.Errorf("read OUI registry: %w", err)
	}
	return b.table()
}

// parseRegistryLine parses an assignment line, "28-6F-B9   (hex)\t\tName" or
// "286FB9     (base 16)\t\tName". Address lines are indented and never match.
func parseRegistryLine(line []byte) (prefix uint32, org []byte, ok bool) {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		return 0, nil, false
	}
	i := bytes.IndexAny(line, " \t")
	if i < 0 {
		return 0, nil, false
	}
	key, rest := line[:i], bytes.TrimLeft(line[i:], " \t")
	switch {
	case bytes.HasPrefix(rest, []byte("(hex)")):
		rest = rest[len("(hex)"):]
	case bytes.HasPrefix(rest, []byte("(base 16)")):
		rest = rest[len("(base 16)"):]
	default:
		return 0, nil, false
	}
	prefix, ok = parsePrefix(key)
	if !ok {
		return 0, nil, false
	}
	return prefix, bytes.TrimSpace(rest), true
}

// parsePrefix reads "28-6F-B9", "28:6F:B9" or "286FB9".
func parsePrefix(s []byte) (uint32, bool) {
	switch len(s) {
	case 8:
		if s[2] != s[5] || (s[2] != '-' && s[2] != ':') {
			return 0, false
		}
	case 6:
	default:
		return 0, false
	}
	var v uint32
	for i, c := range s {
		if len(s) == 8 && (i == 2 || i == 5) {
			continue
		}
		d, ok := hexDigit(c)
		if !ok {
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// eachLine calls fn for every line of r, without its line ending. It accepts
// LF, CRLF and lone CR endings and a UTF-8 byte order mark: the registry has
// been published with each. An overlong line is skipped, not fatal. It reads
// as it goes: the registry is a few megabytes, and holding it whole (twice,
// while a buffer grows) would be doorman's largest use of memory.
func eachLine(r io.Reader, fn func(line []byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	line := make([]byte, 0, 256)
	long := false
	emit := func() {
		if !long {
			fn(line)
		}
		line, long = line[:0], false
	}
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			if len(line) > 0 || long {
				emit()
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch c {
		case '\n':
			emit()
		case '\r':
			emit()
			if next, err := br.Peek(1); err == nil && next[0] == '\n' {
				br.Discard(1)
			}
		default:
			if len(line) >= maxLineBytes {
				long = true
				continue
			}
			line = append(line, c)
		}
	}
}

// ShortName turns a registered organisation name into one for a chat
// message: readable text, legal-form suffixes dropped ("Apple, Inc." →
// "Apple", "Samsung Electronics Co.,Ltd" → "Samsung Electronics"), at most
// MaxNameRunes long. It does not try harder than that: a wrong "nice" name
// would be worse than a long correct one.
func ShortName(org string) string {
	if strings.Contains(org, "&") {
		// HTML entities slipped into the registry: "GmbH &amp; Co. KG".
		org = html.UnescapeString(org)
	}
	s := dropSubsidiaryNote(CleanName(org))
	for {
		t := stripLegalSuffix(s)
		if t == s {
			break
		}
		s = t
	}
	if s == "" {
		s = CleanName(org)
	}
	return truncate(s, MaxNameRunes)
}

// CleanName makes text from a registry file safe to show: invalid UTF-8 is
// read as ISO-8859-1 (older registry files used it), control, format and
// other unprintable characters become spaces, runs of spaces collapse. It
// changes nothing in its own output.
func CleanName(s string) string {
	if !utf8.ValidString(s) {
		s = latin1(s)
	}
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) || r == utf8.RuneError || !unicode.IsPrint(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

func latin1(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

// legalSuffixes are legal forms at the end of registered names, lower case.
// "corporate" is not a legal form but how the registry spells Intel.
var legalSuffixes = []string{
	"incorporated", "inc", "corporation", "corporate", "corp", "company", "co",
	"limited", "ltd", "ltda", "llc", "l.l.c", "plc", "pty", "pte", "pvt",
	"gmbh & co. kg", "gmbh & co kg", "gmbh", "mbh", "kg", "ag", "se",
	"s.a.s", "sas", "s.a", "sa", "s.l", "sl", "s.r.l", "srl", "s.p.a", "spa",
	"s.r.o", "sro", "sp. z o.o", "sp. z o. o", "b.v", "bv", "n.v", "nv",
	"oyj", "oy", "ab", "asa", "a/s", "as", "aps", "k.k", "kk", "sdn bhd", "bhd",
	"kft", "zrt", "jsc", "ojsc", "ooo",
}

// stripLegalSuffix removes one legal-form suffix, with the punctuation that
// separated it, if what remains is still a name.
func stripLegalSuffix(s string) string {
	t := strings.TrimRight(s, " ,.;&")
	lower := strings.ToLower(t)
	for _, suf := range legalSuffixes {
		if len(lower) <= len(suf)+1 || !strings.HasSuffix(lower, suf) {
			continue
		}
		// "Co.,Ltd", "CO;LTD", "(Suzhou)Co", "AG&Co": the registry is not
		// consistent about what separates the legal form.
		if !strings.ContainsRune(" ,.;&)", rune(lower[len(lower)-len(suf)-1])) {
			continue
		}
		rest := strings.TrimRight(t[:len(t)-len(suf)], " ,;&")
		if utf8.RuneCountInString(rest) < 2 {
			return s
		}
		return rest
	}
	if t != s && strings.TrimRight(s, ",;& ") != s {
		return strings.TrimRight(s, ",;& ")
	}
	return s
}

// dropSubsidiaryNote cuts "Aruba, a Hewlett Packard Enterprise Company" to
// "Aruba": the part before the note is the brand people know.
func dropSubsidiaryNote(s string) string {
	lower := strings.ToLower(s)
	for _, note := range []string{", a ", ", an "} {
		if i := strings.Index(lower, note); i >= 2 {
			return s[:i]
		}
	}
	return s
}

// truncate cuts s to at most n runes, at a word boundary when one is near,
// and marks the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)[:n-1]
	if i := lastSpace(r); i > n/2 {
		r = r[:i]
	}
	return strings.TrimRight(string(r), " ,.-") + "…"
}

func lastSpace(r []rune) int {
	for i := len(r) - 1; i >= 0; i-- {
		if r[i] == ' ' {
			return i
		}
	}
	return -1
}

// ParseCompact reads the compact form written by WriteCompact.
func ParseCompact(r io.Reader) (*Table, error) {
	b := newBuilder()
	err := eachLine(r, func(line []byte) {
		if len(line) == 0 || line[0] == '#' {
			return
		}
		key, name, ok := bytes.Cut(line, []byte{'\t'})
		if !ok || len(key) != 6 {
			return
		}
		prefix, ok := parsePrefix(key)
		if !ok {
			return
		}
		b.add(prefix, truncate(CleanName(string(name)), MaxNameRunes))
	})
	if err != nil {
		return nil, fmt.Errorf("read compact OUI table: %w", err)
	}
	return b.table()
}

// WriteCompact writes t in the compact form, each comment line prefixed with
// "# ". The output depends only on t and the comments, so a regenerated file
// changes only when the data did.
func WriteCompact(w io.Writer, t *Table, comments ...string) error {
	bw := bufio.NewWriter(w)
	for _, c := range comments {
		for l := range strings.SplitSeq(c, "\n") {
			fmt.Fprintf(bw, "# %s\n", l)
		}
	}
	for i, p := range t.prefixes {
		fmt.Fprintf(bw, "%06X\t%s\n", p, t.names[i])
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write compact OUI table: %w", err)
	}
	return nil
}
