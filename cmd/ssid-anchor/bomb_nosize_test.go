package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDAGBombWithoutFileSize is issue 25.5 through the binary: the bomb
// CAR against a record without file_size, as every record of the seed
// manifest is. Main took the 256 TB its root declares as the limit and
// verified for hours; verify --car must now fail the record promptly,
// saying the root's size is not trusted.
func TestDAGBombWithoutFileSize(t *testing.T) {
	dir := t.TempDir()
	car := filepath.Join(dir, "bomb.car")
	root, _ := bombCAR(t, car)
	man := filepath.Join(dir, "manifest.json")
	bombManifest(t, man, root, 0)
	var m map[string]any
	if err := json.Unmarshal(mustRead(t, man), &m); err != nil {
		t.Fatal(err)
	}
	delete(m["anchors"].([]any)[0].(map[string]any), "file_size") // as the seed writes records
	b, _ := json.MarshalIndent(m, "", "  ")
	mustWrite(t, man, b)

	code, out := binRun(t, 2*time.Minute, "verify", "--manifest", man, "--car", car)
	if code != exitFailure || !strings.Contains(out, root.String()) || !strings.Contains(out, "records without file_size") || !strings.Contains(out, "not trusted") {
		t.Fatalf("verify --car of the bomb without file_size: exit %d, want 1 naming %s and the CAR bound\n%s", code, root, out)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
