package anchor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// TestVerifyRegistryLogIsAppendOnly: a record of the registry events log
// passes when its anchored bytes start today's log (events appended since:
// not tampering), and the report says so; a log with one old byte changed,
// or cut short, fails naming the offset and line (issue 19.5: main failed
// every record of the log after the next append, for ever when no rule
// selected it any more).
func TestVerifyRegistryLogIsAppendOnly(t *testing.T) {
	pristine := vtBuild(t, t.TempDir())
	logRel := pristine.paths.EventsLog
	withLog := func(o *VerifyOptions) { o.EventsLog = logRel }
	anchored, err := os.ReadFile(filepath.Join(pristine.root.Dir(), logRel))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("appended", func(t *testing.T) {
		f := vtClone(t, pristine)
		if _, err := tree.AppendEvent(filepath.Join(f.root.Dir(), logRel), tree.NewEvent{
			Timestamp: "2026-03-01T09:00:00Z", Event: "blueprint_update", Version: "v4.3.2",
			CommitHash: "def456", Blueprint: "v4.3", Root24Lock: "active", ComplianceScore: "100/100", EmittedBy: "test",
		}); err != nil {
			t.Fatal(err)
		}
		now, _ := os.ReadFile(filepath.Join(f.root.Dir(), logRel))
		grew := len(now) - len(anchored)
		rep := vtVerify(t, f, withLog)
		r := vtRecord(t, rep, logRel)
		if !rep.OK || !r.OK {
			t.Fatalf("an appended log must pass: %+v", r.Checks)
		}
		want := fmt.Sprintf("grew by %d bytes since it was anchored; its first %d bytes are the anchored content", grew, len(anchored))
		if !strings.Contains(r.Note, want) {
			t.Fatalf("note %q, want %q", r.Note, want)
		}
		for _, c := range r.Checks {
			if c.Name == "blocks" && (c.Status != StatusOK || !strings.Contains(c.Detail, "today's log starts with these bytes")) {
				t.Fatalf("blocks check %+v", c)
			}
		}
		// Without knowing which file is the log, the append is a change.
		vtWantFailed(t, vtVerify(t, f, nil), logRel, "file", "the file changed after it was anchored")
	})

	t.Run("one old byte changed", func(t *testing.T) {
		f := vtClone(t, pristine)
		b := bytes.Clone(anchored)
		at := bytes.Index(b, []byte(`"v4.2.1"`)) + 5 // inside an early event
		line := bytes.Count(b[:at], []byte("\n")) + 1
		b[at] = '9'
		b = append(b, []byte("{\"event\": \"later\"}\n")...)
		vtWrite(t, filepath.Join(f.root.Dir(), logRel), b)
		rep := vtVerify(t, f, withLog)
		vtWantFailed(t, rep, logRel, "file", fmt.Sprintf("was rewritten, not appended to: byte %d (line %d) differs", at, line))
	})

	t.Run("one old byte changed, same length", func(t *testing.T) {
		f := vtClone(t, pristine)
		b := bytes.Clone(anchored)
		b[1] ^= 0x20
		vtWrite(t, filepath.Join(f.root.Dir(), logRel), b)
		vtWantFailed(t, vtVerify(t, f, withLog), logRel, "file", "byte 1 (line 1) differs")
	})

	t.Run("truncated", func(t *testing.T) {
		f := vtClone(t, pristine)
		cut := len(anchored) - 40
		vtWrite(t, filepath.Join(f.root.Dir(), logRel), anchored[:cut])
		vtWantFailed(t, vtVerify(t, f, withLog), logRel, "file", fmt.Sprintf("it was truncated at byte %d", cut))
	})
}

// TestVerifyChangedUnselectedFile: a changed file that no rule selects any
// more gets a hint that says exactly that, not "anchor the new content"
// (which would do nothing).
func TestVerifyChangedUnselectedFile(t *testing.T) {
	f := vtBuild(t, t.TempDir())
	rel := "data/small.txt"
	vtWrite(t, filepath.Join(f.root.Dir(), rel), []byte("changed\n"))
	rules := []Rule{{Match: []string{"*"}, Globs: []string{"{events_log}", "data/*.bin"}}}
	sel, err := NewSelector(f.root, f.paths, rules)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Selects(rel) || !sel.Selects("data/big.bin") || !sel.Selects(f.paths.EventsLog) || sel.Selects(f.paths.Manifest) {
		t.Fatal("Selects does not follow the rules")
	}
	rep := vtVerify(t, f, func(o *VerifyOptions) { o.Selected = sel.Selects })
	vtWantFailed(t, rep, rel, "file", "no rule of anchor.rules selects data/small.txt any more, so `ssid-anchor anchor` will not record its new content")
	// A file the rules still select keeps the usual hint.
	rep = vtVerify(t, f, func(o *VerifyOptions) { o.Selected = func(string) bool { return true } })
	vtWantFailed(t, rep, rel, "file", "anchor the new content with `ssid-anchor anchor`")
}

// vtClone copies a built fixture (tree and repo) for a test to change.
func vtClone(t *testing.T, pristine vtFixture) vtFixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "case")
	vtCopy(t, pristine.dir, dir)
	root, err := tree.OpenRoot(filepath.Join(dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return vtFixture{dir: dir, root: root, paths: pristine.paths, repo: filepath.Join(dir, "repo")}
}
