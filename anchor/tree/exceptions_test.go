package tree

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
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
		{name: "no known key", yaml: "allowed: [.git]\n", err: "neither allowed_directories nor allowed_files"},
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
	st, err := CheckRoot24(r)
	if err != nil {
		t.Fatal(err)
	}
	if !st.OK() {
		t.Fatalf("Root-24-LOCK on the real shape: %v", st.Problems)
	}
	for _, stray := range []string{"allowed_files", "git_infrastructure", "version"} {
		os.MkdirAll(filepath.Join(dir, stray), 0o755)
		st, err := CheckRoot24(r)
		if err != nil {
			t.Fatal(err)
		}
		if st.OK() || !slices.Contains(st.Unexpected, stray) {
			t.Errorf("stray root directory %q passed: %+v", stray, st)
		}
		os.Remove(filepath.Join(dir, stray))
	}
}

func FuzzParseExceptions(f *testing.F) {
	f.Add([]byte(realExceptions))
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
		for name := range got {
			if name == "" || name != strings.TrimSpace(name) {
				t.Fatalf("allowed name %q is empty or padded", name)
			}
		}
	})
}
