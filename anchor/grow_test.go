package anchor

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// TestGrowingFileIsNotReadForEver: a file that keeps growing while it is
// anchored (a log being written) is read no further than one byte past the
// size it had when opened, and is reported as changed. Without the bound
// the read follows the writer for as long as it writes.
func TestGrowingFileIsNotReadForEver(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "grow.log")
	const start = 1 << 20
	if err := os.WriteFile(path, make([]byte, start), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := tree.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	p, err := node.ParamsFor("")
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var read, appended int64
	o := RunOptions{Root: root, Params: p, Log: slog.New(slog.DiscardHandler),
		// Every chunk the importer reads, the writer appends two more,
		// up to 64 MiB: an unbounded read would take all of it.
		OnFile: func(string, int64) func(int) {
			return func(n int) {
				read += int64(n)
				if appended < 64<<20 {
					chunk := make([]byte, 2*n)
					if _, err := w.Write(chunk); err != nil {
						t.Error(err)
					}
					appended += int64(len(chunk))
				}
			}
		}}
	_, err = anchorFile(context.Background(), o, nil, "grow.log")
	if err == nil || !strings.Contains(err.Error(), "changed while it was read") {
		t.Fatalf("anchoring a growing file: got %v, want a \"changed while it was read\" error", err)
	}
	if read > start+1 {
		t.Fatalf("read %d bytes of a file that had %d when opened (%d appended meanwhile)", read, start, appended)
	}
}
