package anchor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/node"
	"golang.org/x/sys/unix"
)

// BlockStore is where verification finds anchored blocks locally: the
// node's repo or a set of CAR files (*node.Node and *node.CARSet).
type BlockStore interface {
	// CheckFile re-chunks r with p and compares every block produced with
	// the stored copy; observe sees every chunk (for the file's SHA-256).
	CheckFile(ctx context.Context, r io.Reader, p node.ImportParams, observe func([]byte)) (node.FileCheck, error)
	// ReadFile rebuilds the file at c from stored blocks, each checked
	// against its CID, and returns how many blocks it read. It stops once
	// the blocks read exceed maxBytes (node.MaxDAGBytes of the expected
	// size; <= 0: of the size the root block declares).
	ReadFile(ctx context.Context, c cid.Cid, maxBytes int64, w io.Writer) (int, error)
}

// PinIndex says how anchors are pinned (*node.Node).
type PinIndex interface {
	PinStates(ctx context.Context, targets []cid.Cid) (map[cid.Cid]string, error)
}

// Remote fetches anchors from elsewhere: peers over bitswap
// (*node.Fetcher) or an HTTP gateway (*node.Gateway).
type Remote interface {
	Name() string
	ReadFile(ctx context.Context, c cid.Cid, maxBytes int64, w io.Writer) (int, error)
}

// VerifyOptions say what to check and against what.
type VerifyOptions struct {
	Root tree.Root
	// NoTree skips the files on disk: an audit machine that has only the
	// manifest and CARs checks content from the CARs alone.
	NoTree bool
	// ManifestPath is the manifest file to verify.
	ManifestPath string
	Store        BlockStore
	// StoreName names Store in messages ("the repo", "the CAR files").
	StoreName string
	// Pins, when set, checks that every anchor is pinned.
	Pins         PinIndex
	Remotes      []Remote
	AllowMissing bool
	// ExpectHead is the manifest CID the repo last committed (its chain
	// head); when set, the manifest must be that one or a descendant of it.
	ExpectHead string
	// ChainHeadFile is where the repo keeps its chain head (for messages);
	// "" when no repo is used (CAR files), so no head can be checked.
	ChainHeadFile string
	// EventsLog is the root-relative registry events log: it is append-only,
	// so a record of it passes when its bytes are a prefix of today's log.
	EventsLog string
	// Selected, when set, says whether a rule of anchor.rules selects a
	// root-relative path (a changed file no rule selects is never
	// anchored again, and the failure says so).
	Selected func(rel string) bool
	// Workers is how many records are checked at once (default: CPUs).
	Workers int
	Log     *slog.Logger

	// Trust, when set, requires every manifest of the chain to be signed by
	// one of these peer IDs (--trust, anchor.trust).
	Trust []string

	// Sink, when set, receives every record's result in order instead of
	// the report's Records (see Verify).
	Sink RecordSink

	// onHeld, for tests, sees how many settled results are held at once
	// each time one is settled.
	onHeld func(int)
}

// Check statuses.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusSkipped = "skipped"
)

// Check is one verdict about a record.
type Check struct {
	Name   string `json:"check"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// RecordResult is every check of one record.
type RecordResult struct {
	Index      int     `json:"index"`
	FilePath   string  `json:"file_path"`
	FileHash   string  `json:"file_hash"`
	IPFSCID    string  `json:"ipfs_cid"`
	CIDProfile string  `json:"cid_profile"`
	OK         bool    `json:"ok"`
	Checks     []Check `json:"checks"`
	// Note says why a record that passed needs a word (the registry log
	// grew since it was anchored).
	Note string `json:"note,omitempty"`
}

// Failed lists the failed checks.
func (r RecordResult) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == StatusFailed {
			out = append(out, c)
		}
	}
	return out
}

// ChainLink is one manifest of the hash chain, newest first.
type ChainLink struct {
	CID         string `json:"cid"`
	LastUpdated string `json:"last_updated,omitempty"`
	Records     int    `json:"records"`
}

// ChainResult is the verdict on the previous_manifest_cid chain.
type ChainResult struct {
	OK        bool        `json:"ok"`
	Manifests []ChainLink `json:"manifests"`
	Problems  []string    `json:"problems,omitempty"`
}

// VerifyReport is the whole verdict.
type VerifyReport struct {
	Manifest    string `json:"manifest"`
	ManifestCID string `json:"manifest_cid"`
	// ManifestStored says whether the manifest's exact bytes are in the
	// store, i.e. it is the one the last anchoring run wrote.
	ManifestStored bool `json:"manifest_stored"`
	// ChainHead is the manifest CID the repo last committed, if known.
	ChainHead string         `json:"chain_head,omitempty"`
	Source    string         `json:"source"`
	Records   []RecordResult `json:"records"`
	Chain     ChainResult    `json:"chain"`
	Passed    int            `json:"passed"`
	Failed    int            `json:"failed"`
	OK        bool           `json:"ok"`

	// Signer signed the manifest (null when it is unsigned or invalid);
	// Signatures is the verdict on every manifest of the chain.
	Signer     *SignerInfo     `json:"signer"`
	Signatures SignatureResult `json:"signatures"`

	// Rollback says whether the manifest was checked against the chain
	// head the repo committed, and if not, why.
	Rollback RollbackCheck `json:"rollback"`
}

// CIDs lists every CID the manifest vouches for: the records', the
// manifest's own and those of the chain.
func (r *VerifyReport) CIDs() map[string]bool {
	out := map[string]bool{}
	add := func(s string) {
		if c, err := cid.Decode(s); err == nil {
			out[c.KeyString()] = true
		}
	}
	for _, rec := range r.Records {
		add(rec.IPFSCID)
	}
	add(r.ManifestCID)
	for _, l := range r.Chain.Manifests {
		add(l.CID)
	}
	return out
}

// maxManifestSize bounds what a linked manifest may occupy in memory.
const maxManifestSize = 256 << 20

// RecordSink receives verification results as they are settled, so a caller
// that prints them need not hold them all (VerifyOptions.Sink).
type RecordSink interface {
	// Begin is called once before the first record, with the report's
	// header (Manifest, ManifestCID, ManifestStored, ChainHead, Source)
	// filled in.
	Begin(rep *VerifyReport) error
	// Record is called for every record, in manifest order.
	Record(r RecordResult) error
}

// resultWindow is how many settled results may wait, beyond the ones being
// checked, for an earlier record to finish before they are handed on in
// order: one large file then holds up at most this many small ones, and
// memory does not grow with the number of records.
const resultWindow = 64

// Verify checks every record of the manifest and the manifest chain. It
// returns an error only when it could not verify at all (unreadable
// manifest, store failure, a Sink error); mismatches are in the report.
//
// Without a Sink the report's Records holds every result. With one, each
// result goes to the Sink in record order and Records stays nil: memory is
// then the manifest's bytes (the signature covers them whole), a few
// strings per record and a bounded window of results, whatever the number
// of records.
func Verify(ctx context.Context, o VerifyOptions) (*VerifyReport, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.StoreName == "" {
		o.StoreName = "the store"
	}
	man, raw, err := loadManifestRefs(o.ManifestPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("manifest %s does not exist (pass --manifest or --root pointing at the governance tree)", o.ManifestPath)
	}
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Manifest: o.ManifestPath, Source: o.StoreName, ChainHead: o.ExpectHead}
	mc, err := node.ComputeCID(bytes.NewReader(raw), manifestParams, nil)
	if err != nil {
		return nil, fmt.Errorf("computing the manifest's CID: %w", err)
	}
	rep.ManifestCID = mc.String()
	if _, err := o.Store.ReadFile(ctx, mc, node.MaxDAGBytes(int64(len(raw))), io.Discard); err == nil {
		rep.ManifestStored = true
	}
	// The head's signature is checked now, so its bytes need not be held
	// while the records are checked.
	headSig := CheckSignature(raw)
	raw = nil

	var pins map[cid.Cid]string
	if o.Pins != nil {
		targets := make([]cid.Cid, 0, len(man.Records))
		for _, r := range man.Records {
			if c, err := cid.Decode(r.IPFSCID); err == nil {
				targets = append(targets, c)
			}
		}
		if pins, err = o.Pins.PinStates(ctx, targets); err != nil {
			return nil, err
		}
	}

	sink := o.Sink
	if sink == nil {
		rep.Records = make([]RecordResult, 0, len(man.Records))
		sink = collectSink{rep}
	}
	if err := sink.Begin(rep); err != nil {
		return nil, err
	}
	if err := verifyRecords(ctx, o, man.Records, pins, func(r RecordResult) error {
		if r.OK {
			rep.Passed++
		} else {
			rep.Failed++
		}
		return sink.Record(r)
	}); err != nil {
		return nil, err
	}
	sigs := []SignatureCheck{headSig}
	rep.Chain = walkChain(ctx, o, man, mc, func(b []byte) { sigs = append(sigs, CheckSignature(b)) })
	if o.ExpectHead != "" && !rep.Chain.reaches(o.ExpectHead) {
		rep.Chain.Problems = append(rep.Chain.Problems, fmt.Sprintf(
			"the manifest (cid %s) is neither the chain head this repo last committed, %s, nor a descendant of it: it was rolled back, truncated or rewritten; restore the committed one (`ipfs cat %s`, or `ssid-anchor export` on the anchoring box) or find out who changed it",
			mc, o.ExpectHead, o.ExpectHead))
		rep.Chain.OK = false
	}
	rep.Rollback = rollbackOf(o, rep)
	rep.Signatures, rep.Signer = verifySignatures(o, sigs, rep.Chain)
	rep.OK = rep.Failed == 0 && rep.Chain.OK && rep.Signatures.OK
	return rep, nil
}

// Total is how many records were checked.
func (r *VerifyReport) Total() int { return r.Passed + r.Failed }

// collectSink keeps every result in the report (Verify without a Sink).
type collectSink struct{ rep *VerifyReport }

func (collectSink) Begin(*VerifyReport) error { return nil }
func (s collectSink) Record(r RecordResult) error {
	s.rep.Records = append(s.rep.Records, r)
	return nil
}

// verifyRecords checks the records on o.Workers goroutines and hands every
// result to emit in record order. At most resultWindow results wait for an
// earlier one; emit runs on the calling goroutine. It returns ctx's error
// or emit's first error (after which the rest is not checked).
func verifyRecords(ctx context.Context, o VerifyOptions, recs []recordRef, pins map[cid.Cid]string, emit func(RecordResult) error) error {
	// A later record for the same path means the file has moved on; the
	// older content is history and is checked on the IPFS side only.
	latest := make(map[string]int, len(recs))
	for i, r := range recs {
		latest[r.FilePath] = i
	}
	workers := o.Workers
	if workers <= 0 {
		workers = max(2, runtime.GOMAXPROCS(0))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		i   int
		out chan RecordResult
	}
	jobs := make(chan job)
	// pending holds each dispatched record's result slot in record order;
	// its capacity is what bounds the results held at once.
	pending := make(chan chan RecordResult, resultWindow)
	var held atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				r := recs[j.i]
				res := verifyRecord(ctx, o, r, j.i, latest[r.FilePath], pins)
				if n := held.Add(1); o.onHeld != nil {
					o.onHeld(int(n))
				}
				j.out <- res
			}
		}()
	}
	go func() {
		defer close(pending)
		defer close(jobs)
		for i := range recs {
			out := make(chan RecordResult, 1)
			select {
			case pending <- out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{i, out}:
			case <-ctx.Done():
				close(out) // never checked; the drain below skips it
				return
			}
		}
	}()
	var first error
	for out := range pending {
		r, ok := <-out
		if !ok {
			continue
		}
		held.Add(-1)
		if first == nil && ctx.Err() == nil {
			if err := emit(r); err != nil {
				first = err
				cancel()
			}
		}
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// profileOf is the record's CID profile; old records without one are read
// from the CID version, the only way the seed's CIDs could have been made.
func profileOf(r recordRef, c cid.Cid) string {
	if r.CIDProfile != "" {
		return r.CIDProfile
	}
	if c.Defined() && c.Version() == 1 {
		return node.CIDProfileUnixFSv12025
	}
	return node.CIDProfileDefault
}

func verifyRecord(ctx context.Context, o VerifyOptions, r recordRef, idx, latest int, pins map[cid.Cid]string) RecordResult {
	res := RecordResult{Index: idx, FilePath: r.FilePath, FileHash: r.FileHash, IPFSCID: r.IPFSCID}
	add := func(name, status, format string, a ...any) {
		res.Checks = append(res.Checks, Check{Name: name, Status: status, Detail: fmt.Sprintf(format, a...)})
	}
	want, cerr := cid.Decode(r.IPFSCID)
	res.CIDProfile = profileOf(r, want)
	params, perr := node.ParamsFor(res.CIDProfile)
	if cerr != nil {
		add("cid", StatusFailed, "ipfs_cid %q is not a CID: %v (the record was edited)", r.IPFSCID, cerr)
		res.OK = false
		return res
	}
	if perr != nil {
		add("cid", StatusFailed, "cid_profile: %v", perr)
		return res
	}

	// Local side: the file, its CID, the stored blocks.
	fileMatched := false
	var fc node.FileCheck
	prefixBlocks := 0 // > 0: the log grew; its anchored prefix was checked from the store
	switch {
	case o.NoTree:
		add("file", StatusSkipped, "no governance tree given; content checked from %s", o.StoreName)
	default:
		sum, size, check, err := hashAndCheck(ctx, o, r.FilePath, params)
		switch {
		case errors.Is(err, fs.ErrNotExist) && latest != idx:
			add("file", StatusSkipped, "gone; record %d is the newer content of this path", latest+1)
		case errors.Is(err, fs.ErrNotExist) && o.AllowMissing:
			add("file", StatusSkipped, "gone; allowed by --allow-missing, content checked from %s", o.StoreName)
		case errors.Is(err, fs.ErrNotExist):
			add("file", StatusFailed, "%s is missing; restore it, or pass --allow-missing to check the IPFS side alone", r.FilePath)
		case err != nil:
			add("file", StatusFailed, "%v", err)
		case sum != r.FileHash && latest != idx:
			add("file", StatusSkipped, "changed since; record %d covers its current content", latest+1)
		case sum != r.FileHash && o.EventsLog != "" && r.FilePath == path.Clean(o.EventsLog):
			// Append-only: the anchored bytes must start today's log.
			if lp, err := logPrefixCheck(ctx, o, want, r, size); err != nil {
				add("file", StatusFailed, "%v", err)
			} else {
				add("file", StatusOK, "%s", lp.detail)
				prefixBlocks, res.Note = lp.blocks, lp.detail
			}
		case sum != r.FileHash:
			add("file", StatusFailed, "sha256 of %s is %s, the record says %s: the file changed after it was anchored %s", r.FilePath, sum, r.FileHash, changedHint(o, r.FilePath))
		case r.FileSize > 0 && size != r.FileSize:
			add("file", StatusFailed, "%s is %d bytes, the record says %d", r.FilePath, size, r.FileSize)
		default:
			add("file", StatusOK, "sha256 matches (%d bytes)", size)
			fileMatched = true
			fc = check
		}
	}
	if fileMatched {
		if fc.Root.Equals(want) {
			add("cid", StatusOK, "re-chunking the file with %s gives %s", res.CIDProfile, want)
			if fc.BlockErr != nil {
				add("blocks", StatusFailed, "%v", fc.BlockErr)
			} else {
				add("blocks", StatusOK, "all %d blocks in %s and intact", fc.Blocks, o.StoreName)
			}
		} else {
			add("cid", StatusFailed, "re-chunking the file with %s gives %s, the record says %s (the record's CID was edited, or its cid_profile is wrong)", res.CIDProfile, fc.Root, want)
		}
	} else if prefixBlocks > 0 {
		add("cid", StatusSkipped, "the log grew since; its anchored prefix was compared with the content under %s instead", want)
	} else {
		add("cid", StatusSkipped, "no file content to re-chunk")
	}
	if prefixBlocks > 0 {
		add("blocks", StatusOK, "rebuilt from %d blocks in %s; sha256 matches file_hash, and today's log starts with these bytes", prefixBlocks, o.StoreName)
	} else if !fileMatched || !fc.Root.Equals(want) {
		// The content must then come from the store itself.
		blocks, err := contentCheck(ctx, o.Store, want, r)
		if err != nil {
			add("blocks", StatusFailed, "%v", err)
		} else {
			add("blocks", StatusOK, "rebuilt from %d blocks in %s; sha256 matches file_hash", blocks, o.StoreName)
		}
	}

	if pins != nil {
		if mode, ok := pins[want]; ok {
			add("pinned", StatusOK, "%s", mode)
		} else {
			add("pinned", StatusFailed, "%s is not pinned, so a garbage collection may delete it; pin it (`ssid-anchor import` of its CAR pins it)", want)
		}
	}

	// Sources are asked at once, so one slow gateway does not hold up the
	// others; each has its own timeouts.
	remote := make([]Check, len(o.Remotes))
	var wg sync.WaitGroup
	for i, rm := range o.Remotes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			blocks, err := contentCheck(ctx, rm, want, r)
			if err != nil {
				remote[i] = Check{Name: rm.Name(), Status: StatusFailed, Detail: err.Error()}
			} else {
				remote[i] = Check{Name: rm.Name(), Status: StatusOK, Detail: fmt.Sprintf("fetched %d blocks, each matches its CID; sha256 matches file_hash", blocks)}
			}
		}()
	}
	wg.Wait()
	res.Checks = append(res.Checks, remote...)
	res.OK = len(res.Failed()) == 0
	return res
}

// hashAndCheck reads the file once: the chunks feed the SHA-256 (on a second
// core for large files) and the re-chunking that compares blocks.
func hashAndCheck(ctx context.Context, o VerifyOptions, rel string, p node.ImportParams) (string, int64, node.FileCheck, error) {
	f, err := o.Root.Open(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", 0, node.FileCheck{}, fs.ErrNotExist
		}
		return "", 0, node.FileCheck{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, node.FileCheck{}, err
	}
	if !st.Mode().IsRegular() {
		return "", 0, node.FileCheck{}, fmt.Errorf("%s is not a regular file", rel)
	}
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	// Synchronous hashing: the re-chunking (anchoring's importer) reuses a
	// chunk's buffer once observe returns, and already runs observe on a
	// goroutine of its own beside the block hashing.
	h := newFileHasher(0)
	fc, err := o.Store.CheckFile(ctx, io.LimitReader(f, st.Size()+1), p, h.write) // a growing file stops one byte past its size and fails the size check
	sum, n := h.sum()
	if err != nil {
		return "", 0, node.FileCheck{}, fmt.Errorf("reading %s: %w", rel, err)
	}
	return sum, n, fc, nil
}

// reader is what contentCheck reads a file's DAG from.
type reader interface {
	ReadFile(ctx context.Context, c cid.Cid, maxBytes int64, w io.Writer) (int, error)
}

// readLimit is how many block bytes rebuilding a record's content may read:
// what its file_size allows. Records written before file_size existed fall
// back to the size their root block declares (0 tells the node so).
func readLimit(r recordRef) int64 {
	if r.FileSize > 0 {
		return node.MaxDAGBytes(r.FileSize)
	}
	return 0
}

// contentCheck rebuilds the file at c from src and compares its SHA-256
// and size with the record.
func contentCheck(ctx context.Context, src reader, c cid.Cid, r recordRef) (int, error) {
	// The SHA-256 runs beside the block checks, on the other core.
	h := newFileHasher(r.FileSize)
	blocks, err := src.ReadFile(ctx, c, readLimit(r), hasherWriter{h})
	sum, n := h.sum()
	if err != nil {
		return blocks, err
	}
	if sum != r.FileHash {
		return blocks, fmt.Errorf("the content under %s hashes to %s, the record says %s (the record's hash or CID was edited)", c, sum, r.FileHash)
	}
	if r.FileSize > 0 && n != r.FileSize {
		return blocks, fmt.Errorf("the content under %s is %d bytes, the record says %d", c, n, r.FileSize)
	}
	return blocks, nil
}

// hasherWriter feeds a fileHasher; the walkers hand over fresh slices they
// never touch again, so no copy is needed.
type hasherWriter struct{ h *fileHasher }

func (w hasherWriter) Write(p []byte) (int, error) {
	w.h.write(p)
	return len(p), nil
}

// verifyChain follows previous_manifest_cid back to the first manifest. Each
// linked manifest must be in the store, re-chunk to its CID, parse, and keep
// every record of its predecessor in order: anchoring only appends, so a
// dropped or changed record means history was rewritten.
//
// Only the records' refs of two manifests are held at once, and one
// manifest's bytes.
func verifyChain(ctx context.Context, o VerifyOptions, head *manifestRefs, headCID cid.Cid) ChainResult {
	return walkChain(ctx, o, head, headCID, nil)
}

// walkChain is verifyChain that also hands the bytes of every manifest it
// appends to the chain to each (for its signature check).
func walkChain(ctx context.Context, o VerifyOptions, head *manifestRefs, headCID cid.Cid, each func([]byte)) ChainResult {
	res := ChainResult{Manifests: []ChainLink{{CID: headCID.String(), LastUpdated: head.LastUpdated, Records: len(head.Records)}}}
	seen := map[string]bool{headCID.KeyString(): true}
	cur, curCID := head, headCID.String()
	for cur.PreviousCID != "" {
		prevCID, err := cid.Decode(cur.PreviousCID)
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("manifest %s: previous_manifest_cid %q is not a CID: the chain is broken", curCID, cur.PreviousCID))
			break
		}
		if seen[prevCID.KeyString()] {
			res.Problems = append(res.Problems, fmt.Sprintf("manifest %s links back to %s again: the chain loops", curCID, prevCID))
			break
		}
		seen[prevCID.KeyString()] = true
		b, err := readStoredManifest(ctx, o.Store, prevCID)
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("previous manifest %s (linked from %s) cannot be read from %s: %v; the chain is broken (import the CAR that carries it)", prevCID, curCID, o.StoreName, err))
			break
		}
		params, _ := node.ParamsFor(profileOf(recordRef{}, prevCID))
		got, err := node.ComputeCID(bytes.NewReader(b), params, nil)
		if err != nil || !got.Equals(prevCID) {
			res.Problems = append(res.Problems, fmt.Sprintf("previous manifest %s: its bytes re-chunk to %s, not to the linked CID", prevCID, got))
			break
		}
		prev, err := parseManifestRefs(b)
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("%s (linked from %s as the previous manifest) is not a manifest: %v", prevCID, curCID, err))
			break
		}
		if p := historyBreak(prev, cur); p != "" {
			res.Problems = append(res.Problems, fmt.Sprintf("manifest %s does not continue %s, which it links as previous: %s; history was rewritten", curCID, prevCID, p))
			break
		}
		res.Manifests = append(res.Manifests, ChainLink{CID: prevCID.String(), LastUpdated: prev.LastUpdated, Records: len(prev.Records)})
		if each != nil {
			each(b)
		}
		cur, curCID = prev, prevCID.String()
	}
	res.OK = len(res.Problems) == 0
	return res
}

// readStoredManifest reads a linked manifest from store, at most
// maxManifestSize bytes (and the DAG that many bytes may take).
func readStoredManifest(ctx context.Context, store BlockStore, c cid.Cid) ([]byte, error) {
	buf := limitedBuffer{max: maxManifestSize}
	if _, err := store.ReadFile(ctx, c, node.MaxDAGBytes(maxManifestSize), &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// reaches says whether the chain followed from the manifest passed through
// the manifest with CID head.
func (c ChainResult) reaches(head string) bool {
	hc, err := cid.Decode(head)
	if err != nil {
		return false
	}
	for _, l := range c.Manifests {
		if lc, err := cid.Decode(l.CID); err == nil && lc.Equals(hc) {
			return true
		}
	}
	return false
}

// StoredChain reads the manifest with CID c from store and follows its
// previous_manifest_cid links there. It returns the chain's CIDs newest
// first, or ok=false when c does not have a manifest's shape (any other
// anchored file; see looksLikeManifest).
func StoredChain(ctx context.Context, store BlockStore, c cid.Cid) (chain []string, ok bool, err error) {
	man, ok, err := storedManifestRefs(ctx, store, c)
	if !ok || err != nil {
		return nil, false, err
	}
	res := verifyChain(ctx, VerifyOptions{Store: store, StoreName: "the repo"}, man, c)
	for _, l := range res.Manifests {
		chain = append(chain, l.CID)
	}
	return chain, true, nil
}

// jsonObjectBuffer stops a read at once when the content does not start
// like a JSON object.
type jsonObjectBuffer struct {
	limitedBuffer
	notJSON bool
}

func (b *jsonObjectBuffer) Write(p []byte) (int, error) {
	if b.Len() == 0 {
		if t := bytes.TrimLeft(p, " \t\r\n\xef\xbb\xbf"); len(t) > 0 && t[0] != '{' {
			b.notJSON = true
			return 0, errors.New("not a JSON object")
		}
	}
	return b.limitedBuffer.Write(p)
}

// historyBreak says how next fails to extend prev's records, or "".
func historyBreak(prev, next *manifestRefs) string {
	if len(next.Records) < len(prev.Records) {
		return fmt.Sprintf("it has %d records, its predecessor %d", len(next.Records), len(prev.Records))
	}
	for i, p := range prev.Records {
		n := next.Records[i]
		if p.FilePath != n.FilePath || p.FileHash != n.FileHash || p.IPFSCID != n.IPFSCID {
			return fmt.Sprintf("record %d (%s) differs: file_hash %s/cid %s before, %s/%s now", i+1, p.FilePath, short(p.FileHash), short(p.IPFSCID), short(n.FileHash), short(n.IPFSCID))
		}
	}
	return ""
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// limitedBuffer refuses to grow past max.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, fmt.Errorf("larger than %d MiB, not a manifest", b.max>>20)
	}
	return b.Buffer.Write(p)
}

// ExportSet is what an audit machine needs besides the manifest file: the
// DAG of every record and of every manifest in the chain.
type ExportSet struct {
	// Manifest is the manifest file's own CID; ManifestStored says whether
	// the store has it (it does right after an anchoring run).
	Manifest       cid.Cid
	ManifestStored bool
	// Anchors are the records' distinct CIDs in record order, with the
	// first record's path for naming.
	Anchors []ExportAnchor
	// Chain are the previous manifests, newest first.
	Chain []cid.Cid
	// ChainProblems say why the chain could not be followed to its start.
	ChainProblems []string
}

// ExportAnchor is one record CID to export.
type ExportAnchor struct {
	CID      cid.Cid
	FilePath string
}

// PlanExport lists what to export for the manifest at path.
func PlanExport(ctx context.Context, store BlockStore, path string) (*ExportSet, error) {
	man, raw, err := loadManifestRefs(path)
	if err != nil {
		return nil, err
	}
	mc, err := node.ComputeCID(bytes.NewReader(raw), manifestParams, nil)
	if err != nil {
		return nil, err
	}
	set := &ExportSet{Manifest: mc}
	if _, err := store.ReadFile(ctx, mc, node.MaxDAGBytes(int64(len(raw))), io.Discard); err == nil {
		set.ManifestStored = true
	}
	seen := map[string]bool{}
	for i, r := range man.Records {
		c, err := cid.Decode(r.IPFSCID)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: record %d (%s): ipfs_cid %q: %w", path, i+1, r.FilePath, r.IPFSCID, err)
		}
		if !seen[c.KeyString()] {
			seen[c.KeyString()] = true
			set.Anchors = append(set.Anchors, ExportAnchor{CID: c, FilePath: r.FilePath})
		}
	}
	ch := verifyChain(ctx, VerifyOptions{Store: store, StoreName: "the repo"}, man, mc)
	for _, l := range ch.Manifests[1:] {
		c, _ := cid.Decode(l.CID)
		set.Chain = append(set.Chain, c)
	}
	set.ChainProblems = ch.Problems
	return set, nil
}
