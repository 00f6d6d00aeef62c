package tree

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileAtomicLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.json")
	for _, v := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(p)
	ents, _ := os.ReadDir(dir)
	if string(b) != "two" || len(ents) != 1 {
		t.Fatalf("content %q, %d dir entries", b, len(ents))
	}
}

func TestLockDirExcludes(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDir(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	unlock()
	unlock2, err := LockDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

func TestPathsValidateRefusesBadPatterns(t *testing.T) {
	p := DefaultPaths()
	p.ReleaseBundles = "05_documentation/releases/[.zip"
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "paths.release_bundles") || !strings.Contains(err.Error(), "invalid pattern") {
		t.Fatalf("Validate = %v, want an invalid pattern error naming paths.release_bundles", err)
	}
	if err := DefaultPaths().Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
}
