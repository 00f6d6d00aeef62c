package tree

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// realExceptions is the shape of the SSID repository's file: groups of
// flow lists under allowed_directories / allowed_files, plus other keys.
const realExceptions = `# Root-level exceptions for the Root-24-LOCK
version: "1.0"
description: "Entries allowed at the repository root besides the 24 modules"
allowed_directories:
  git_infrastructure: [".git", ".github", ".githooks"]
  tooling: [".venv", ".continue", ".claude", ".pytest_cache"]
allowed_files:
  git_config: [".gitattributes", ".gitignore", ".gitmodules"]
  project_metadata: ["LICENSE", "README.md"]
  build:
    - pytest.ini
    - .pre-commit-config.yaml  # hooks
enforcement:
  mode: strict
`

func TestParseExceptions(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
		err        string
	}{
		{name: "real SSID shape", yaml: realExceptions, want: []string{
			".claude", ".continue", ".git", ".githooks", ".github", ".gitattributes", ".gitignore", ".gitmodules",
			".pre-commit-config.yaml", ".pytest_cache", ".venv", "LICENSE", "README.md", "pytest.ini"}},
		{name: "older plain list", yaml: "# allowed\n- .git\n- 'LICENSE'\n- \"README.md\"\n", want: []string{".git", "LICENSE", "README.md"}},
		{name: "flat lists under the keys", yaml: "allowed_directories: [.git]\nallowed_files:\n  - README.md\n", want: []string{".git", "README.md"}},
		{name: "null group", yaml: "allowed_directories:\n  empty:\nallowed_files: [a]\n", want: []string{"a"}},
		{name: "SSID repository: under root_level_exceptions", yaml: "root_level_exceptions:\n  allowed_directories:\n    g: [.git]\n  allowed_files:\n    p: [README.md]\n    b:\n      - .claude\n", want: []string{".git", "README.md", ".claude"}},
		{name: "plain list under root_level_exceptions", yaml: "root_level_exceptions: [.git, LICENSE]\n", want: []string{".git", "LICENSE"}},
		{name: "top level and section merged", yaml: "allowed_files: [a]\nroot_level_exceptions:\n  allowed_directories: [b]\n", want: []string{"a", "b"}},
		{name: "empty section", yaml: "root_level_exceptions:\n", err: "neither allowed_directories nor allowed_files"},
		{name: "section holds a word", yaml: "root_level_exceptions: yes\n", err: "expected a mapping"},
		{name: "no known key", yaml: "allowed: [.git]\n", err: "neither allowed_directories nor allowed_files"},
		{name: "keys one level too deep", yaml: "x:\n  allowed_files: [a]\n", err: "neither allowed_directories nor allowed_files"},
		{name: "alias", yaml: "allowed_files: &a [x]\nallowed_directories: *a\n", err: "line 1: YAML anchors and aliases"},
		{name: "alias bomb", yaml: aliasBomb, err: "anchors and aliases"},
		{name: "scalar document", yaml: "just text\n", err: "expected a mapping"},
		{name: "empty", yaml: "", want: nil},
		{name: "only comments", yaml: "# no exceptions\n", want: nil},
		{name: "broken YAML", yaml: "allowed_files: [a\n", err: "line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseExceptions([]byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for n := range got {
				names = append(names, n)
			}
			sort.Strings(names)
			want := slices.Clone(tc.want)
			sort.Strings(want)
			if !slices.Equal(names, want) {
				t.Fatalf("allowed = %q\nwant      %q", names, want)
			}
		})
	}
}

// TestCheckRoot24RealShape is the SSID root: 24 modules, the usual dot
// entries, and the real exceptions file; the lock holds. A stray directory
// named after a key of that file (allowed_files, git_infrastructure) does
// not pass.
func TestCheckRoot24RealShape(t *testing.T) {
	dir := t.TempDir()
	names := []string{"ai_layer", "audit_logging", "core", "deployment", "documentation", "data_pipeline",
		"governance_legal", "identity_score", "meta_identity", "interoperability", "test_simulation", "tooling",
		"ui_layer", "zero_time_auth", "infra", "codex", "observability", "data_layer", "adapters", "foundation",
		"post_quantum_crypto", "datasets", "compliance", "meta_orchestration"}
	for i, n := range names {
		os.MkdirAll(filepath.Join(dir, fmt.Sprintf("%02d_%s", i+1, n)), 0o755)
	}
	for _, d := range []string{".git", ".github", ".venv"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	for _, f := range []string{"LICENSE", "README.md", "pytest.ini", ".gitignore"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	os.MkdirAll(filepath.Join(dir, "23_compliance/exceptions"), 0o755)
	os.WriteFile(filepath.Join(dir, RootExceptionsPath), []byte(realExceptions), 0o644)
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := CheckRoot24(r)
	if !st.OK() {
		t.Fatalf("Root-24-LOCK on the real shape: %v", st.Problems)
	}
	for _, stray := range []string{"allowed_files", "git_infrastructure", "version"} {
		os.MkdirAll(filepath.Join(dir, stray), 0o755)
		st := CheckRoot24(r)
		if st.OK() || !slices.Contains(st.Unexpected, stray) {
			t.Errorf("stray root directory %q passed: %+v", stray, st)
		}
		os.Remove(filepath.Join(dir, stray))
	}
}

// aliasBomb is 433 bytes of YAML whose aliases stand for 9^9 names under
// allowed_files (issue 25.4): following them took guard 20+ s, ten times
// more per level.
const aliasBomb = `a: &a ["x1","x2","x3","x4","x5","x6","x7","x8","x9"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
allowed_directories: [*i,*i,*i,*i,*i,*i,*i,*i,*i]
allowed_files: [*i,*i,*i,*i,*i,*i,*i,*i,*i,*i,*i]
`

func FuzzParseExceptions(f *testing.F) {
	f.Add([]byte(realExceptions))
	if b, err := os.ReadFile("testdata/root_level_exceptions.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(aliasBomb))
	f.Add([]byte("root_level_exceptions:\n  allowed_files: &x {g: [a, *x]}\n"))
	f.Add([]byte("- .git\n- LICENSE\n"))
	f.Add([]byte("allowed_files: &a [x]\nallowed_directories: *a\n"))
	f.Add([]byte("allowed_files: {a: {b: [c, {d: e}]}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseExceptions(b)
		if err != nil {
			if got != nil {
				t.Fatalf("error %v with a result", err)
			}
			return
		}
		// Accepted input holds no alias: nothing can stand for more names
		// than the file spells out.
		if bytes.Contains(b, []byte("*")) || bytes.Contains(b, []byte("&")) {
			var doc yaml.Node
			if yaml.Unmarshal(b, &doc) == nil && refuseAliases(&doc) != nil {
				t.Fatalf("accepted a document with an alias or anchor: %q", b)
			}
		}
		if len(got) > len(b) {
			t.Fatalf("%d names from %d bytes", len(got), len(b))
		}
		for name := range got {
			if name == "" || name != strings.TrimSpace(name) {
				t.Fatalf("allowed name %q is empty or padded", name)
			}
		}
	})
}

// ssidRoot builds the SSID root as the repository has it: the 24 modules,
// the dot entries and files its exceptions file allows, and that file
// (exceptions, the real one unless overridden).
func ssidRoot(t *testing.T, exceptions []byte) (string, Root) {
	t.Helper()
	dir := t.TempDir()
	for i := 1; i <= 24; i++ {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("%02d_module", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{".git", ".github", ".githooks", ".venv", ".claude", ".pytest_cache"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	for _, f := range []string{"LICENSE", "README.md", "pytest.ini", ".gitignore", ".gitattributes", ".pre-commit-config.yaml"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	if exceptions == nil {
		var err error
		if exceptions, err = os.ReadFile("testdata/root_level_exceptions.yaml"); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "23_module/exceptions"), 0o755)
	// The exceptions file lives in 23_compliance: rename module 23.
	os.Rename(filepath.Join(dir, "23_module"), filepath.Join(dir, "23_compliance"))
	if err := os.WriteFile(filepath.Join(dir, RootExceptionsPath), exceptions, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return dir, r
}

// TestCheckRoot24RealFile: the SSID repository's own exceptions file
// (testdata copy of the sample), with its keys under root_level_exceptions
// and a block list among its groups: the lock holds on a root that obeys
// it, and an entry it does not allow is named.
func TestCheckRoot24RealFile(t *testing.T) {
	dir, r := ssidRoot(t, nil)
	st := CheckRoot24(r)
	if st.Status() != Root24Active || !st.OK() || st.ExceptionsFile != RootExceptionsPath {
		t.Fatalf("the real exceptions file on a root that obeys it: %s %v", st.Status(), st.Problems)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	st = CheckRoot24(r)
	if st.Status() != Root24Violated || !slices.Equal(st.Unexpected, []string{"notes.txt"}) || !strings.Contains(strings.Join(st.Problems, ";"), "notes.txt") {
		t.Fatalf("a stray notes.txt: %s unexpected %v problems %v", st.Status(), st.Unexpected, st.Problems)
	}
}

// TestCheckRoot24Unknown: when the exceptions file cannot be read or
// understood the verdict is unknown with a reason naming the file, never
// violated; what can be measured without it is still listed.
func TestCheckRoot24Unknown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, dir string)
		reason string
	}{
		{"broken YAML", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, RootExceptionsPath), []byte("root_level_exceptions:\n  allowed_files: [a\n"), 0o644)
		}, "cannot be understood: parsing YAML"},
		{"unknown shape", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, RootExceptionsPath), []byte("exceptions:\n  files: [a]\n"), 0o644)
		}, "neither allowed_directories nor allowed_files"},
		{"alias bomb", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, RootExceptionsPath), []byte(aliasBomb), 0o644)
		}, "anchors and aliases"},
		{"missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, RootExceptionsPath))
		}, "does not exist"},
		{"a directory", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, RootExceptionsPath))
			os.Mkdir(filepath.Join(dir, RootExceptionsPath), 0o755)
		}, "cannot be read"},
		{"too large", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, RootExceptionsPath), bytes.Repeat([]byte("# x\n"), maxExceptionsSize/4+1), 0o644)
		}, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, r := ssidRoot(t, nil)
			tc.setup(t, dir)
			st := CheckRoot24(r)
			if st.Status() != Root24Unknown || st.OK() {
				t.Fatalf("verdict %q, want unknown (problems %v)", st.Status(), st.Problems)
			}
			if !strings.Contains(st.Reason, RootExceptionsPath) || !strings.Contains(st.Reason, tc.reason) {
				t.Fatalf("reason %q must name %s and say %q", st.Reason, RootExceptionsPath, tc.reason)
			}
			if len(st.Problems) == 0 || st.Problems[0] != st.Reason || !slices.Contains(st.Unjudged, ".git") || len(st.Unexpected) != 0 {
				t.Fatalf("problems %v unjudged %v unexpected %v", st.Problems, st.Unjudged, st.Unexpected)
			}
			// A missing module is still reported, and the verdict stays unknown.
			os.Remove(filepath.Join(dir, "05_module"))
			st = CheckRoot24(r)
			if st.Status() != Root24Unknown || !slices.Equal(st.Missing, []string{"05"}) {
				t.Fatalf("with module 05 gone: %s missing %v", st.Status(), st.Missing)
			}
		})
	}
}

// TestParseExceptionsAliasBombIsCheap: the bomb is refused after one walk
// of its parse, without following a single alias (the count of names
// visited is what grew by nine per level).
func TestParseExceptionsAliasBombIsCheap(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(aliasBomb), &doc); err != nil {
		t.Fatal(err)
	}
	nodes := 0
	var count func(n *yaml.Node)
	count = func(n *yaml.Node) {
		nodes++
		for _, c := range n.Content {
			count(c)
		}
	}
	count(&doc)
	if nodes > 200 {
		t.Fatalf("the parse of %d bytes holds %d nodes: aliases were expanded", len(aliasBomb), nodes)
	}
	_, err := ParseExceptions([]byte(aliasBomb))
	if err == nil || !strings.Contains(err.Error(), "line 1:") {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatal("wrong error")
	}
}
