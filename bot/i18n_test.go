package bot

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/doorman-upnp/doorman/approvals"
)

// readCatalog returns a catalog's texts: id → plural form → text.
func readCatalog(t *testing.T, l Lang) map[string]map[string]string {
	t.Helper()
	raw, err := catalogFiles.ReadFile("locales/" + string(l) + ".toml")
	if err != nil {
		t.Fatal(err)
	}
	var entries map[string]any
	if err := toml.Unmarshal(raw, &entries); err != nil {
		t.Fatalf("%s.toml: %v", l, err)
	}
	out := map[string]map[string]string{}
	for id, v := range entries {
		forms := map[string]string{}
		switch v := v.(type) {
		case string:
			forms["other"] = v
		case map[string]any:
			for form, text := range v {
				s, ok := text.(string)
				if !ok {
					t.Errorf("%s.toml: %s.%s is not a text", l, id, form)
				}
				forms[form] = s
			}
		default:
			t.Errorf("%s.toml: %s is neither a text nor a table", l, id)
		}
		out[id] = forms
	}
	return out
}

var fieldRe = regexp.MustCompile(`\{\{\s*\.([A-Za-z]+)\s*\}\}`)

func fields(s string) []string {
	var out []string
	for _, m := range fieldRe.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func isSubset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// TestCatalogsComplete fails when a text exists in one language only, has
// other plural forms, or fills other fields in one language than another.
func TestCatalogsComplete(t *testing.T) {
	en := readCatalog(t, English)
	for _, l := range langs()[1:] {
		other := readCatalog(t, l)
		for id, forms := range en {
			theirs, ok := other[id]
			if !ok {
				t.Errorf("%s is in en.toml but not in %s.toml", id, l)
				continue
			}
			if got, want := slices.Sorted(maps.Keys(theirs)), slices.Sorted(maps.Keys(forms)); !slices.Equal(got, want) {
				t.Errorf("%s has plural forms %v in %s.toml, %v in en.toml", id, got, l, want)
			}
			for form, text := range forms {
				// A translation may leave a field out ("noch einmal"
				// for a count of one), never invent one.
				if got, want := fields(theirs[form]), fields(text); !isSubset(got, want) || (form == "other" && !slices.Equal(got, want)) {
					t.Errorf("%s.%s fills %v in %s.toml, %v in en.toml", id, form, got, l, want)
				}
				if strings.TrimSpace(theirs[form]) == "" {
					t.Errorf("%s.%s is empty in %s.toml", id, form, l)
				}
			}
		}
		for id := range other {
			if _, ok := en[id]; !ok {
				t.Errorf("%s is in %s.toml but not in en.toml", id, l)
			}
		}
	}
}

// TestCatalogsHoldEveryTextUsed fails when the code asks for a text that no
// catalog has: Words.T and Words.N with a literal id, and the ids of the
// command menu.
func TestCatalogsHoldEveryTextUsed(t *testing.T) {
	en := readCatalog(t, English)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	used := map[string]string{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "T" && sel.Sel.Name != "N") {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				id, _ := strconv.Unquote(lit.Value)
				used[id] = fset.Position(lit.Pos()).String()
			}
			return true
		})
	}
	for id, where := range used {
		if _, ok := en[id]; !ok {
			t.Errorf("%s: text %s is in no catalog", where, id)
		}
	}
}

func TestLangOfCode(t *testing.T) {
	tests := []struct {
		code string
		want Lang
	}{
		{"de", German}, {"de-DE", German}, {"de-at", German}, {"DE_CH", German}, {" de ", German},
		{"en", English}, {"en-GB", English}, {"", English}, {"fr", English}, {"dee", English}, {"nds", English},
	}
	for _, tt := range tests {
		if got := LangOfCode(tt.code); got != tt.want {
			t.Errorf("LangOfCode(%q) = %q, want %q", tt.code, got, tt.want)
		}
	}
}

func TestParseLang(t *testing.T) {
	for in, want := range map[string]Lang{"": "", "en": English, "DE": German, " de ": German} {
		if got, err := ParseLang(in); err != nil || got != want {
			t.Errorf("ParseLang(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"fr", "german", "de-DE"} {
		if _, err := ParseLang(in); err == nil || !strings.Contains(err.Error(), "en or de") {
			t.Errorf("ParseLang(%q) = %v, want an error naming en or de", in, err)
		}
	}
}

func TestWords(t *testing.T) {
	c, err := NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.In(German).T("CmdList"); got != "aktuelle Portfreigaben und ihr Stand" {
		t.Errorf("German CmdList = %q", got)
	}
	if got := c.In("fr").T("CmdList"); got != "current port shares and their state" {
		t.Errorf("unknown language CmdList = %q, want English", got)
	}
	if got := c.In(English).T("NoSuchText"); got != "NoSuchText" {
		t.Errorf("missing text = %q, want its id", got)
	}
	if got := (Words{}).T("CmdList"); got != "current port shares and their state" {
		t.Errorf("a Words without a catalog says %q, want English", got)
	}
}

// Every risky port's reason has a text in every catalog: the ids are made
// from the service's name, so no literal in the code shows them.
func TestRisksInEveryCatalog(t *testing.T) {
	c, err := NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for port := 1; port <= 65535; port++ {
		r, ok := approvals.RiskOf(uint16(port))
		if !ok {
			continue
		}
		for _, l := range langs() {
			if id := riskTextID(r); c.In(l).T(id) == id {
				t.Errorf("port %d (%s) has no %s text %s", port, r.Service, l, id)
			}
		}
	}
	if got := c.In(English).riskWhy(approvals.Risk{Service: "Remote Desktop"}); got != "Remote Desktop: Windows remote desktop; ransomware gangs' favourite way in" {
		t.Errorf("English risk = %q", got)
	}
}
