package identify

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/doorman-upnp/doorman/identify/internal/ieee"
)

func parseSample(t testing.TB) *ieee.Table {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "oui-sample.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table, err := ieee.ParseRegistry(f)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

func TestParseRegistrySample(t *testing.T) {
	table := parseSample(t)
	tests := []struct {
		name   string
		prefix uint32
		want   string // "" means not in the table
	}{
		{"hex and base 16 lines", 0x000393, "Apple"},
		{"Co., Ltd. dropped", 0x286FB9, "Nokia Shanghai Bell"},
		{"GmbH dropped", 0x00040E, "AVM"},
		{"Co.,Ltd dropped", 0x8CF5A3, "Samsung Electronics"},
		{"Inc. dropped", 0xF09FC2, "Ubiquiti Networks"},
		{"ISO-8859-1 name", 0x0050C2, "Jörgen Elektronik"},
		{"base 16 line only, lower-case hex, LF", 0xB827EB, "Raspberry Pi Foundation"},
		{"MA-M block names no vendor", 0x70B3D5, ""},
		{"private assignment", 0x9C93E4, ""},
		{"registered to two vendors", 0x080030, ""},
		{"address line that looks like a prefix", 0x111000, ""},
		{"garbage prefix", 0x001122, ""},
		{"never listed", 0xABCDEF, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := table.Lookup(tt.prefix)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("Lookup(%06X) = %q, %v; want %q", tt.prefix, got, ok, tt.want)
			}
		})
	}
	if table.Len() != 7 {
		t.Errorf("Len() = %d, want 7", table.Len())
	}
}

// The registry has been published with LF, CRLF and (in old copies) CR
// line ends; all must read the same.
func TestParseRegistryLineEnds(t *testing.T) {
	lines := []string{
		"OUI/MA-L\t\tOrganization",
		"",
		"00-03-93   (hex)\t\tApple, Inc.",
		"000393     (base 16)\t\tApple, Inc.",
		"\t\t\t\tCupertino  CA  95014",
		"",
		"00-04-0E   (hex)\t\tAVM GmbH",
	}
	for _, end := range []string{"\n", "\r\n", "\r"} {
		t.Run(strconv.Quote(end), func(t *testing.T) {
			for _, bom := range []string{"", "\xef\xbb\xbf"} {
				table, err := ieee.ParseRegistry(strings.NewReader(bom + strings.Join(lines, end)))
				if err != nil {
					t.Fatal(err)
				}
				if table.Len() != 2 {
					t.Errorf("bom %q: Len() = %d, want 2", bom, table.Len())
				}
				if v, _ := table.Lookup(0x00040E); v != "AVM" {
					t.Errorf("bom %q: last line without line end: %q, want AVM", bom, v)
				}
			}
		})
	}
}

func TestParseRegistryNothingUsable(t *testing.T) {
	for _, name := range []string{"arp-home.txt", "arp-empty.txt"} {
		f, err := os.Open(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ieee.ParseRegistry(f)
		f.Close()
		if !errors.Is(err, ieee.ErrEmpty) {
			t.Errorf("%s: err = %v, want ErrEmpty", name, err)
		}
	}
	if _, err := ieee.ParseRegistry(strings.NewReader("")); !errors.Is(err, ieee.ErrEmpty) {
		t.Errorf("empty input: err = %v, want ErrEmpty", err)
	}
	// An overlong line is skipped, not fatal.
	long := strings.Repeat("x", 100<<10) + "\n00-03-93   (hex)\t\tApple, Inc.\n"
	if table, err := ieee.ParseRegistry(strings.NewReader(long)); err != nil || table.Len() != 1 {
		t.Errorf("overlong line: err = %v, want one entry", err)
	}
}

func TestShortName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Apple, Inc.", "Apple"},
		{"Samsung Electronics Co.,Ltd", "Samsung Electronics"},
		{"HUAWEI TECHNOLOGIES CO.,LTD", "HUAWEI TECHNOLOGIES"},
		{"Cisco Systems, Inc", "Cisco Systems"},
		{"Intel Corporate", "Intel"},
		{"zte corporation", "zte"},
		{"TP-LINK TECHNOLOGIES CO.,LTD.", "TP-LINK TECHNOLOGIES"},
		{"Xiaomi Communications Co Ltd", "Xiaomi Communications"},
		{"Sagemcom Broadband SAS", "Sagemcom Broadband"},
		{"Philips Lighting BV", "Philips Lighting"},
		{"AVM Audiovisuelles Marketing und Computersysteme GmbH", "AVM Audiovisuelles Marketing und Computersysteme"},
		{"Alfred Kaercher GmbH &amp; Co KG", "Alfred Kaercher"},
		{"BLUEWAY ELECTRONIC CO;LTD", "BLUEWAY ELECTRONIC"},
		{"3NOD MULTIMEDIA(SHENZHEN)CO.,LTD", "3NOD MULTIMEDIA(SHENZHEN)"},
		{"Motorola Mobility LLC, a Lenovo Company", "Motorola Mobility"},
		{"Aruba, a Hewlett Packard Enterprise Company", "Aruba"},
		{"Hon Hai Precision Ind. Co.,Ltd.", "Hon Hai Precision Ind."},
		{"Raspberry Pi Trading Ltd", "Raspberry Pi Trading"},
		{"Texas Instruments", "Texas Instruments"},
		// Nothing is left once the legal form goes: keep the whole.
		{"Inc.", "Inc."},
		{"AB", "AB"},
		// Control characters and odd spacing from a damaged file.
		{"  Evil\x1b[31m  Corp\u200b\tLtd ", "Evil [31m"},
		{"J\xf6rgen AB", "Jörgen"},
		{"Guangdong Oppo Mobile Telecommunications Corp.,Ltd and a very long tail of words", "Guangdong Oppo Mobile Telecommunications…"},
	}
	for _, tt := range tests {
		got := ieee.ShortName(tt.in)
		if got != tt.want {
			t.Errorf("ShortName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if n := utf8.RuneCountInString(got); n > ieee.MaxNameRunes {
			t.Errorf("ShortName(%q) is %d runes long", tt.in, n)
		}
	}
}

func TestCompactRoundTrip(t *testing.T) {
	table := parseSample(t)
	var buf bytes.Buffer
	if err := ieee.WriteCompact(&buf, table, "a comment", "two\nlines"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "# a comment\n# two\n# lines\n000393\tApple\n") {
		t.Errorf("compact form starts\n%s", buf.String()[:80])
	}
	back, err := ieee.ParseCompact(&buf)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTable(t, back, table)
}

func assertSameTable(t *testing.T, got, want *ieee.Table) {
	t.Helper()
	if got.Len() != want.Len() {
		t.Errorf("Len() = %d, want %d", got.Len(), want.Len())
	}
	n := 0
	for p, name := range want.All() {
		if g, _ := got.Lookup(p); g != name {
			if n++; n <= 10 {
				t.Errorf("%06X: %q, want %q", p, g, name)
			}
		}
	}
}

func TestEmbeddedTable(t *testing.T) {
	table, err := embeddedTable()
	if err != nil {
		t.Fatal(err)
	}
	if table.Len() < 30000 {
		t.Errorf("embedded table has only %d prefixes", table.Len())
	}
	for prefix, want := range map[uint32]string{
		0x000393: "Apple",
		0x3C22FB: "Apple",
		0x00040E: "AVM",
		0xB827EB: "Raspberry Pi Foundation",
		0x7C2EBD: "Google",
		0x080030: "", // registered three times
		0x70B3D5: "", // MA-M block
	} {
		if got, _ := table.Lookup(prefix); got != want {
			t.Errorf("embedded %06X = %q, want %q", prefix, got, want)
		}
	}
	// Compressed size stays reasonable for a binary that embeds it.
	if len(embeddedOUI) > 1500<<10 {
		t.Errorf("embedded table is %d bytes", len(embeddedOUI))
	}
}

// The embedded table must be what the generator makes of the registry it
// names; when the same registry is installed, compare them.
func TestEmbeddedTableMatchesSystemRegistry(t *testing.T) {
	zr, err := gzip.NewReader(bytes.NewReader(embeddedOUI))
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(zr, head)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(DefaultOUIFile), ".lastupdate"))
	if err != nil {
		t.Skipf("no Debian ieee-data installed: %v", err)
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Skipf(".lastupdate: %v", err)
	}
	date := time.Unix(sec, 0).UTC().Format("2006-01-02")
	if !bytes.Contains(head[:n], []byte("IEEE data of "+date)) {
		t.Skipf("installed ieee-data is of %s, the embedded table of another date", date)
	}
	system, err := readOUIFile(DefaultOUIFile)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := embeddedTable()
	if err != nil {
		t.Fatal(err)
	}
	assertSameTable(t, embedded, system)
}

// Whatever a file holds, the parser must not panic, and every name in the
// table must be fit to show and survive the compact form unchanged.
func FuzzParseRegistry(f *testing.F) {
	for _, name := range []string{"oui-sample.txt", "arp-home.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		table, err := ieee.ParseRegistry(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ieee.ErrEmpty) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		for p, name := range table.All() {
			if p > 0xFFFFFF {
				t.Fatalf("prefix %X out of range", p)
			}
			if got, ok := table.Lookup(p); !ok || got != name {
				t.Fatalf("Lookup(%06X) = %q, %v; want %q", p, got, ok, name)
			}
			checkShowable(t, name, ieee.MaxNameRunes)
		}
		var buf bytes.Buffer
		if err := ieee.WriteCompact(&buf, table); err != nil {
			t.Fatal(err)
		}
		back, err := ieee.ParseCompact(&buf)
		if err != nil {
			t.Fatal(err)
		}
		assertSameTable(t, back, table)
	})
}

func checkShowable(t *testing.T, s string, maxRunes int) {
	t.Helper()
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxRunes {
		t.Fatalf("name %q is empty, invalid or too long", s)
	}
	if strings.TrimSpace(s) != s || strings.Contains(s, "  ") {
		t.Fatalf("name %q has stray spaces", s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			t.Fatalf("name %q holds %U", s, r)
		}
	}
}
