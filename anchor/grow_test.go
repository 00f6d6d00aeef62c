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
		// Once the file is opened and its size taken, the writer appends
		// 8 MiB before the first byte is read, and two more bytes for
		// every byte the importer hands on, up to 64 MiB: an unbounded
		// read would take all of it. (Appending only from the progress
		// callback raced the importer, which reads ahead of it.)
		OnFile: func(string, int64) func(int) {
			grow := func(n int64) {
				if appended < 64<<20 {
					if _, err := w.Write(make([]byte, n)); err != nil {
						t.Error(err)
					}
					appended += n
				}
			}
			grow(8 << 20)
			return func(n int) {
				read += int64(n)
				grow(2 * int64(n))
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
