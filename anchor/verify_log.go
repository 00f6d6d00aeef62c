package anchor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/ipfs/go-cid"
)

// changedHint is what to do about a file that changed after it was
// anchored: anchor the new content, unless no rule selects the file any
// more, in which case `anchor` would never record it and the hint says so.
func changedHint(o VerifyOptions, rel string) string {
	if o.Selected != nil && !o.Selected(rel) {
		return fmt.Sprintf("and no rule of anchor.rules selects %s any more, so `ssid-anchor anchor` will not record its new content: restore the file, or add a rule whose globs select it and run `ssid-anchor anchor --reprocess all`", rel)
	}
	return "(restore it, or anchor the new content with `ssid-anchor anchor`)"
}

// logPrefix is a record of the registry events log whose anchored bytes
// start today's log.
type logPrefix struct {
	blocks int
	detail string
}

// logPrefixCheck compares a record of the append-only registry events log
// with today's log: the content under want is rebuilt from the store (each
// block checked against its CID, its SHA-256 against file_hash) and
// compared, byte by byte, with the start of the file. The record passes
// when the anchored bytes are a prefix of the log (events were appended:
// not tampering); a byte that differs is named by its offset and line. The
// file is read once more, at most as far as the anchored content reaches.
func logPrefixCheck(ctx context.Context, o VerifyOptions, want cid.Cid, r recordRef, size int64) (logPrefix, error) {
	f, err := o.Root.Open(r.FilePath)
	if err != nil {
		return logPrefix{}, err
	}
	defer f.Close()
	cmp := &prefixWriter{file: bufio.NewReaderSize(f, 64<<10), h: sha256.New(), line: 1, diffAt: -1}
	blocks, err := o.Store.ReadFile(ctx, want, readLimit(r), cmp)
	if err != nil {
		if errors.Is(err, errPrefixRead) {
			return logPrefix{}, fmt.Errorf("reading %s: %w", r.FilePath, cmp.err)
		}
		return logPrefix{}, fmt.Errorf("sha256 of %s differs from the record's, and its anchored content cannot be read from %s to see whether events were only appended: %w", r.FilePath, o.StoreName, err)
	}
	if sum := hex.EncodeToString(cmp.h.Sum(nil)); sum != r.FileHash {
		return logPrefix{}, fmt.Errorf("the content under %s hashes to %s, the record says %s (the record's hash or CID was edited)", want, sum, r.FileHash)
	}
	if r.FileSize > 0 && cmp.n != r.FileSize {
		return logPrefix{}, fmt.Errorf("the content under %s is %d bytes, the record says %d", want, cmp.n, r.FileSize)
	}
	switch {
	case cmp.diffAt >= 0:
		return logPrefix{}, fmt.Errorf("the registry events log %s was rewritten, not appended to: byte %d (line %d) differs from the content anchored at %s (%d bytes); events are only ever appended, so restore the log from git or find out who changed it",
			r.FilePath, cmp.diffAt, cmp.diffLine, want, cmp.n)
	case cmp.short:
		return logPrefix{}, fmt.Errorf("the registry events log %s is %d bytes, shorter than the %d bytes anchored at %s: it was truncated at byte %d (line %d); restore it from git or find out who changed it",
			r.FilePath, size, cmp.n, want, cmp.shortAt, cmp.line)
	}
	return logPrefix{blocks: blocks, detail: fmt.Sprintf(
		"the registry events log grew by %d bytes since it was anchored; its first %d bytes are the anchored content (sha256 matches file_hash): events were appended, which is not tampering",
		size-cmp.n, cmp.n)}, nil
}

// errPrefixRead marks a failure to read the file (not the store).
var errPrefixRead = errors.New("reading the file")

// prefixWriter receives the anchored content and compares it with the
// file's bytes at the same offsets, hashing it on the way.
type prefixWriter struct {
	file     *bufio.Reader
	h        hash.Hash
	buf      []byte
	n        int64 // anchored bytes seen
	line     int   // line of the file at n (while equal)
	diffAt   int64 // first differing offset, -1 while none
	diffLine int
	short    bool  // the file ended before the anchored content did
	shortAt  int64 // where
	err      error
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.h.Write(p)
	if w.diffAt < 0 && !w.short {
		if cap(w.buf) < len(p) {
			w.buf = make([]byte, len(p))
		}
		got := w.buf[:len(p)]
		k, err := io.ReadFull(w.file, got)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			w.err = err
			return 0, errPrefixRead
		}
		if i := firstDiff(p[:k], got[:k]); i >= 0 {
			w.diffAt, w.diffLine = w.n+int64(i), w.line+bytes.Count(p[:i], []byte{'\n'})
		} else if k < len(p) {
			w.short, w.shortAt = true, w.n+int64(k)
			w.line += bytes.Count(p[:k], []byte{'\n'})
		} else {
			w.line += bytes.Count(p, []byte{'\n'})
		}
	}
	w.n += int64(len(p))
	return len(p), nil
}

// firstDiff is the index of the first byte where a and b (equally long)
// differ, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// Rollback check statuses (VerifyReport.Rollback.Status).
const (
	// RollbackOK: the manifest is the chain head the repo committed, or a
	// descendant of it.
	RollbackOK = "ok"
	// RollbackFailed: it is neither (rolled back, truncated, rewritten).
	RollbackFailed = "failed"
	// RollbackNoHead: the repo has recorded no chain head (it never
	// anchored nor imported a manifest): nothing to check against.
	RollbackNoHead = "no_head"
	// RollbackHeadMissing: the repo holds manifests of this chain, so it
	// recorded a head, but the head file is gone.
	RollbackHeadMissing = "head_missing"
	// RollbackNoRepo: verification from CAR files, without a repo.
	RollbackNoRepo = "no_repo"
)

// RollbackCheck is the verdict on the manifest against the chain head.
type RollbackCheck struct {
	// Checked says whether the comparison was made at all.
	Checked bool   `json:"checked"`
	Status  string `json:"status"`
	Head    string `json:"chain_head,omitempty"`
	Detail  string `json:"detail"`
}

// rollbackOf says whether the manifest could be checked against the chain
// head and what came of it. Without a head the check is off, and the
// report says so (never silently): a repo that holds manifests of the chain
// must have recorded a head, so its absence there means the head file was
// removed.
func rollbackOf(o VerifyOptions, rep *VerifyReport) RollbackCheck {
	switch {
	case o.ExpectHead != "" && rep.Chain.reaches(o.ExpectHead):
		return RollbackCheck{Checked: true, Status: RollbackOK, Head: o.ExpectHead,
			Detail: fmt.Sprintf("the manifest is the chain head this repo committed (%s) or a descendant of it", o.ExpectHead)}
	case o.ExpectHead != "":
		return RollbackCheck{Checked: true, Status: RollbackFailed, Head: o.ExpectHead,
			Detail: fmt.Sprintf("the manifest is neither the chain head this repo committed (%s) nor a descendant of it", o.ExpectHead)}
	case o.ChainHeadFile == "":
		return RollbackCheck{Status: RollbackNoRepo,
			Detail: fmt.Sprintf("rollback not checked: verifying from %s without a repo, there is no chain head to compare the manifest with (an older manifest carried with its CARs would pass)", o.StoreName)}
	case rep.ManifestStored || len(rep.Chain.Manifests) > 1:
		return RollbackCheck{Status: RollbackHeadMissing,
			Detail: fmt.Sprintf("rollback NOT checked: this repo holds manifests of this chain (it anchored or imported them), so it recorded a chain head, but %s is gone: a rolled-back manifest cannot be told from the current one. Find out who removed it; `ssid-anchor anchor` or an `ssid-anchor import` of the anchoring box's export records the head again", o.ChainHeadFile)}
	default:
		return RollbackCheck{Status: RollbackNoHead,
			Detail: fmt.Sprintf("rollback not checked: this repo has recorded no chain head (%s; it never anchored nor imported a manifest), so a rolled-back manifest cannot be detected; `ssid-anchor import` the anchoring box's export to record one", o.ChainHeadFile)}
	}
}
