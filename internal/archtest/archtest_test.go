// Package archtest holds the package map of docs/ARCHITECTURE.md as a test:
// it fails when an import goes against the map, or when a package appears
// that the map does not place.
package archtest

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/doorman-upnp/doorman"

// mayImport lists, for every package of the module (path relative to the
// module), the module's packages its non-test files may import. The layers
// run watcher ← storage ← approvals ← bot ← cmd/doorman; identify and
// metrics sit beside them. Keep docs/ARCHITECTURE.md in step.
var mayImport = map[string][]string{
	"watcher":                  {},
	"storage":                  {"watcher"},
	"approvals":                {"storage", "watcher"},
	"bot":                      {"approvals", "identify", "storage", "watcher"},
	"identify":                 {"identify/internal/ieee", "watcher"},
	"identify/internal/ieee":   {},
	"identify/internal/ouigen": {"identify/internal/ieee"},
	"metrics":                  {"storage", "watcher"},
	"cmd/doorman":              {"approvals", "bot", "identify", "metrics", "storage", "watcher"},
	"deploy":                   {},
	"internal/archtest":        {},

	// Test helpers: only tests import them.
	"bot/telegramtest":   {},
	"internal/chatpng":   {},
	"internal/fakefritz": {},
	"internal/lab":       {},
	"internal/testlog":   {},
}

// testHelpers may be imported by the tests of any package, and by nothing
// else. A package named after another with "test" appended (storagetest,
// approvalstest) is one too, and may import what the package it is named
// for may, and that package.
var testHelpers = []string{"bot/telegramtest", "internal/chatpng", "internal/fakefritz", "internal/lab", "internal/testlog"}

// testMayImport adds what a package's tests may import besides its own
// allowance and the test helpers.
var testMayImport = map[string][]string{
	// The app table is checked against approvals' list of risky ports.
	"identify": {"approvals"},
}

type listedPackage struct {
	ImportPath   string
	Module       *struct{ Path string }
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// modulePackages runs go list -deps -json over the module and returns the
// module's own packages by relative path.
func modulePackages(t *testing.T) map[string]listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("reading go list: %v", err)
		}
		if rel, ok := relative(p.ImportPath); ok {
			pkgs[rel] = p
		}
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no package of the module")
	}
	return pkgs
}

// relative returns path inside the module, or ok false for a package from
// elsewhere.
func relative(path string) (rel string, ok bool) {
	if path == module {
		return "", true
	}
	return strings.CutPrefix(path, module+"/")
}

// namedHelper returns the package a "…test" helper is named for, if there is
// one: approvals for approvals/approvalstest or internal/approvalstest.
func namedHelper(rel string, known map[string]listedPackage) (base string, ok bool) {
	last := rel[strings.LastIndexByte(rel, '/')+1:]
	name, ok := strings.CutSuffix(last, "test")
	if !ok || name == "" {
		return "", false
	}
	for p := range known {
		if p == name || strings.HasSuffix(p, "/"+name) {
			if _, placed := mayImport[p]; placed {
				return p, true
			}
		}
	}
	return "", false
}

// allowance returns what rel's non-test files may import, and whether rel is
// a test helper.
func allowance(rel string, known map[string]listedPackage) (allowed []string, helper, placed bool) {
	if a, ok := mayImport[rel]; ok {
		return a, slices.Contains(testHelpers, rel), true
	}
	if base, ok := namedHelper(rel, known); ok {
		return append(slices.Clone(mayImport[base]), append([]string{base}, testHelpers...)...), true, true
	}
	return nil, false, false
}

func TestImportsFollowTheMap(t *testing.T) {
	pkgs := modulePackages(t)
	helpers := map[string]bool{}
	for rel := range pkgs {
		if _, helper, _ := allowance(rel, pkgs); helper {
			helpers[rel] = true
		}
	}
	for rel, p := range pkgs {
		allowed, _, placed := allowance(rel, pkgs)
		if !placed {
			t.Errorf("package %s is not on the map: add it to mayImport here and to docs/ARCHITECTURE.md", rel)
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := relative(imp)
			if ours && !slices.Contains(allowed, dep) {
				t.Errorf("%s imports %s, which the map does not allow (docs/ARCHITECTURE.md)", rel, dep)
			}
		}
		for _, imp := range append(slices.Clone(p.TestImports), p.XTestImports...) {
			dep, ours := relative(imp)
			if !ours || dep == rel || helpers[dep] || slices.Contains(allowed, dep) || slices.Contains(testMayImport[rel], dep) {
				continue
			}
			t.Errorf("the tests of %s import %s, which the map does not allow (docs/ARCHITECTURE.md)", rel, dep)
		}
	}
}

// The check itself: an import against the map is caught.
func TestAllowanceCatchesAnUpwardImport(t *testing.T) {
	known := map[string]listedPackage{"approvals": {}, "storage": {}, "approvals/approvalstest": {}, "internal/storagetest": {}}
	for _, tt := range []struct {
		pkg, imports string
		ok           bool
	}{
		{"storage", "watcher", true},
		{"storage", "approvals", false},
		{"watcher", "storage", false},
		{"approvals", "bot", false},
		{"bot", "cmd/doorman", false},
		{"approvals", "internal/testlog", false},
		{"approvals/approvalstest", "approvals", true},
		{"approvals/approvalstest", "bot", false},
		{"internal/storagetest", "storage", true},
	} {
		allowed, _, placed := allowance(tt.pkg, known)
		if got := placed && slices.Contains(allowed, tt.imports); got != tt.ok {
			t.Errorf("%s importing %s allowed: %v, want %v", tt.pkg, tt.imports, got, tt.ok)
		}
	}
	if _, _, placed := allowance("newpackage", known); placed {
		t.Error("a package the map does not name was placed")
	}
}
