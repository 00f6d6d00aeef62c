package anchor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor/statcache"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
	"golang.org/x/sys/unix"
)

// Batch is what a run needs from the IPFS node: add files, link them under
// one root, pin that root durably. *node.Batch implements it.
type Batch interface {
	AddFile(r io.Reader, p node.ImportParams, observe func([]byte)) (cid.Cid, error)
	Link(name string, c cid.Cid)
	Commit(pinName string) (cid.Cid, error)
	Abort()
}

// ErrManifestLocked means another run holds the manifest.
var ErrManifestLocked = errors.New("the anchor manifest is locked by another ssid-anchor run")

// RunOptions configure one anchoring run.
type RunOptions struct {
	Root   tree.Root
	Paths  tree.Paths
	Config Config
	Params node.ImportParams
	// OpenBatch starts the node batch; nil means a dry run that computes
	// hashes and CIDs and writes nothing.
	OpenBatch func(context.Context) (Batch, error)
	// Signer signs every manifest the run writes (the node's key); it is
	// required unless the run is dry.
	Signer Signer
	// Provider names this node in statistics.storage_providers.
	Provider string
	Now      func() time.Time
	Log      *slog.Logger
	// OnFile, when set, is called before each file is read and returns a
	// callback that sees the bytes as they are processed (progress bars).
	OnFile func(path string, size int64) func(n int)
	// Reprocess re-selects files for past events after a rules change:
	// "all", or the proof anchor of the first event to take again. Files
	// already anchored with the same content are still skipped.
	Reprocess string
	// OnCommit, when set, is called with the manifest's CID when a run has
	// written its final manifest (the repo records it as its chain head).
	OnCommit func(manifestCID string) error
	// OnWork, when set, is told how many records the manifest holds and
	// how many selected files the run will consider, once it knows (a
	// one-shot process sizes its memory limit by them).
	OnWork func(records, files int)
	// OnFilesDone, when set, is told after each selected file how many of
	// the files OnWork announced are settled (anchored, unchanged or
	// failed) and how many of them failed (progress lines).
	OnFilesDone func(done, failed int)
	// StatCache, when set, is the file (in the repo) of the stat cache
	// (package statcache): a selected file whose content the manifest
	// records and whose metadata is what the last run saw is not read
	// again. Dry runs do not use it. Its entries are judged racy against
	// Now (see statcache.RacyWindow).
	StatCache string
}

// ErrReprocessNotFound means --reprocess names no event of the log.
var ErrReprocessNotFound = errors.New("no event in the registry log has this proof anchor")

// Skip is a selected file that needed no new record.
type Skip struct {
	Path   string `json:"file_path"`
	Reason string `json:"reason"`
}

// FileError is a selected file that could not be anchored.
type FileError struct {
	Path string `json:"file_path"`
	Err  string `json:"error"`
}

// Result is what a run did.
type Result struct {
	NewEvents int             `json:"new_events"`
	Records   []Record        `json:"anchored"`
	Skipped   []Skip          `json:"unchanged"`
	Failed    []FileError     `json:"failed"`
	BadBlocks []tree.BadBlock `json:"bad_log_blocks"`
	// Unmatched lists, per event taken, the rule globs that selected nothing
	// (the first maxUnmatched; UnmatchedOmitted counts the rest).
	Unmatched        []Unmatched `json:"unmatched_globs"`
	UnmatchedOmitted int         `json:"unmatched_globs_omitted,omitempty"`
	// Reprocessed counts past events taken again because of Reprocess.
	Reprocessed  int    `json:"reprocessed_events,omitempty"`
	ManifestPath string `json:"manifest"`
	ManifestCID  string `json:"manifest_cid,omitempty"`
	PreviousCID  string `json:"previous_manifest_cid,omitempty"` // the written manifest's: the manifest the run started from
	RunRoot      string `json:"run_root_cid,omitempty"`
	DryRun       bool   `json:"dry_run"`
	Rewritten    bool   `json:"manifest_rewritten"`

	// SignedBy is the peer ID whose key signed the manifest written.
	SignedBy string `json:"signed_by,omitempty"`

	// Checkpoints are the manifests a long run wrote on the way, oldest
	// first (anchor.checkpoint_interval): signed and pinned, each naming
	// the manifest the run started from as its previous_manifest_cid, as
	// the final one does; none becomes the chain head, so they are off the
	// chain (one link per run).
	Checkpoints []string `json:"checkpoint_manifest_cids,omitempty"`

	// read is how the registry log was read (from the cursor or whole).
	read tree.CursorRead
}

// LogRead says how the run read the registry log: from the manifest's
// cursor (only the bytes after it) or whole, and how many events it saw.
func (r *Result) LogRead() tree.CursorRead { return r.read }

// Run anchors what the new registry events call for: it selects files,
// hashes and adds each in one pass, links the run's files under one pinned
// root, makes blocks and pins durable, and only then rewrites the manifest
// atomically. Unchanged content is never recorded twice; changed content at
// a known path gets a new record. A crash at any point leaves the old
// manifest or the new one, and every CID either records is pinned.
func Run(ctx context.Context, o RunOptions) (*Result, error) {
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := tree.CheckRelative(o.Paths.EventsLog); err != nil {
		return nil, fmt.Errorf("%w: paths.events_log: %w", ErrConfig, err)
	}
	if err := tree.CheckRelative(o.Paths.Manifest); err != nil {
		return nil, fmt.Errorf("%w: paths.manifest: %w", ErrConfig, err)
	}
	// Rules are checked before anything moves: a bad glob must not use up
	// events with nothing anchored.
	sel, err := NewSelector(o.Root, o.Paths, o.Config.Rules)
	if err != nil {
		return nil, err
	}
	res := &Result{ManifestPath: o.Paths.Manifest, DryRun: o.OpenBatch == nil, Unmatched: []Unmatched{}}
	if !res.DryRun && o.Signer == nil {
		return nil, fmt.Errorf("anchoring run: %w", errNoSigner)
	}

	// A dry run writes nothing, not even the lock's directory; it reads a
	// manifest that is only ever replaced whole.
	if !res.DryRun {
		unlock, err := lockManifest(o)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}

	// A run with nothing new reads the watermark alone (scanProcessed
	// checks the JSON but decodes no record); the records are decoded once
	// the log has something to anchor.
	var man *Manifest
	var processed Watermark
	oldBytes, err := readManifestIn(o.Root, o.Paths.Manifest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		man = NewManifest(o.Config.BlueprintVersion, o.Now())
	case err != nil:
		return nil, err
	default:
		if processed, err = scanProcessed(oldBytes); err != nil {
			if man, err = parseManifestAt(oldBytes, o.Paths.Manifest); err != nil {
				return nil, err
			}
			processed = man.Processed
		}
	}

	// Once the log shows an event to take, the manifest's records are
	// decoded on another core while the selection walks the tree.
	type parsed struct {
		man *Manifest
		err error
	}
	var parsing chan parsed
	startParse := func() {
		if man != nil || parsing != nil {
			return
		}
		parsing = make(chan parsed, 1)
		go func(b []byte) {
			m, err := parseManifestAt(b, o.Paths.Manifest)
			parsing <- parsed{m, err}
		}(oldBytes)
	}
	t0 := time.Now()
	work, mark, err := collect(o, sel, processed, res, startParse)
	if err != nil {
		return nil, err
	}
	o.Log.Debug("events scanned", "read", res.read.Mode, "from_offset", res.read.From, "bytes", res.read.BytesRead, "events", res.read.Events,
		"new_events", res.NewEvents, "files", len(work), "took", time.Since(t0))
	if res.NewEvents == 0 && res.Reprocessed == 0 && mark.sameEvents(processed) {
		return res, nil
	}
	if man == nil {
		startParse()
		p := <-parsing
		if man, err = p.man, p.err; err != nil {
			return nil, err
		}
	}

	if o.OnWork != nil {
		o.OnWork(len(man.Records), len(work))
	}
	// Paths never recorded go first: after an interruption the next run
	// makes progress before it re-hashes files that are probably unchanged.
	// The maps' keys are the records' own strings.
	known := make(map[string]bool, len(man.Records))
	recorded := make(identities, len(man.Records))
	for i := range man.Records {
		r := &man.Records[i]
		known[r.FilePath] = true
		recorded.add(r)
	}
	sort.SliceStable(work, func(i, j int) bool { return !known[work[i].path] && known[work[j].path] })
	run, err := newRunState(o, man, oldBytes, res)
	if err != nil {
		return nil, err
	}
	oldBytes = nil // the previous manifest is added from its file (commit)
	if err := run.open(ctx); err != nil {
		return nil, err
	}
	defer run.abort()
	// The stat cache: unchanged known files are skipped without a read.
	var cache *statcache.Cache
	var next *statcache.Builder
	if o.StatCache != "" && !res.DryRun {
		c, why := statcache.Load(o.StatCache, o.Root.Dir())
		if why != "" {
			o.Log.Debug("stat cache not used", "why", why)
		}
		cache, next = c, c.Next(o.Root.Dir(), o.Now())
	}
	// Stat the known files for the cache first, on every core: one
	// openat2, fstat and close each, 16,500 of them in a run over the
	// real tree.
	var same []bool
	if cache != nil {
		same = checkUnchanged(o.Root, cache, work, known, recorded)
	}
	lastCommit := time.Now()
	for i, w := range work {
		if o.OnFilesDone != nil && i > 0 {
			o.OnFilesDone(i, len(res.Failed))
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A long run saves its progress now and then, so an interruption
		// loses at most one interval of work.
		if run.pending() > 0 && run.batch != nil && o.Config.CheckpointEvery() > 0 && time.Since(lastCommit) >= o.Config.CheckpointEvery() {
			if err := run.commit(ctx, nil); err != nil {
				return nil, err
			}
			lastCommit = time.Now()
		}
		if same != nil && same[i] {
			res.Skipped = append(res.Skipped, Skip{Path: w.path, Reason: "content already anchored"})
			continue
		}
		fr, err := anchorKnown(ctx, o, run.batch, w.path, known[w.path], recorded)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if next != nil {
			if err == nil && fr.stable {
				next.Add(w.path, fr.st, fr.rec.FileHash)
			} else {
				next.Drop(w.path)
			}
		}
		if err != nil {
			res.Failed = append(res.Failed, FileError{Path: w.path, Err: err.Error()})
			o.Log.Warn("file not anchored", "file", w.path, "err", err)
			continue
		}
		rec := fr.rec
		if recorded.has(rec.FilePath, rec.FileHash) {
			res.Skipped = append(res.Skipped, Skip{Path: w.path, Reason: "content already anchored"})
			continue
		}
		rec.IPFSGatewayURL = o.Config.GatewayURL(rec.IPFSCID)
		rec.AnchoredAt = run.now
		rec.EventType = w.ev.name
		rec.EventVersion = w.ev.version
		rec.EventTimestamp = w.ev.timestamp
		rec.BlueprintVersion = o.Config.BlueprintVersion
		rec.EventProofAnchor = w.ev.proof
		rec.Pinned = run.batch != nil
		rec.CIDProfile = o.Params.Profile
		if run.batch != nil {
			run.batch.Link(path.Base(rec.FilePath), mustCID(rec.IPFSCID))
		}
		man.Records = append(man.Records, rec)
		recorded.add(&rec)
	}
	if o.OnFilesDone != nil && len(work) > 0 {
		o.OnFilesDone(len(work), len(res.Failed))
	}
	// Written once the run's manifest is: a run killed while it writes
	// the cache has lost nothing. One that cannot be written only costs a
	// full read next time.
	saveCache := func() {
		if next == nil {
			return
		}
		t1 := time.Now()
		if err := next.Write(o.StatCache); err != nil {
			o.Log.Warn("stat cache not saved; the next run reads every file", "err", err)
		} else {
			o.Log.Debug("stat cache saved", "took", time.Since(t1))
		}
	}
	if len(work) > 0 && len(res.Failed) == len(work) {
		return res, fmt.Errorf("none of the %d selected files could be anchored", len(work))
	}
	// With a failed file the watermark stays put, so the next run selects
	// it again; content identity keeps the rest from being recorded twice.
	final := &mark
	if len(res.Failed) > 0 || mark.sameEvents(man.Processed) {
		final = nil
	}
	if run.pending() == 0 && final == nil {
		saveCache()
		return res, nil
	}
	o.Log.Debug("files processed", "anchored", len(man.Records)-run.base, "took", time.Since(t0))
	if err := run.commit(ctx, final); err != nil {
		return nil, err
	}
	o.Log.Debug("run committed", "took", time.Since(t0))
	saveCache()
	return res, nil
}

// lockManifest takes the lock every manifest writer (Run, Rewrite) holds
// from reading the manifest to replacing it.
func lockManifest(o RunOptions) (func(), error) {
	unlock, err := o.Root.LockDir(path.Dir(o.Paths.Manifest))
	if errors.Is(err, tree.ErrLocked) {
		return nil, fmt.Errorf("%w (%v)", ErrManifestLocked, err)
	}
	return unlock, err
}

// identities are the (file_path, file_hash) pairs recorded: a record's
// identity (SPEC 2.2). The strings are the records' own.
type identities map[identity]struct{}

type identity struct{ path, hash string }

func (ids identities) add(r *Record) { ids[identity{r.FilePath, r.FileHash}] = struct{}{} }

func (ids identities) has(path, hash string) bool {
	_, ok := ids[identity{path, hash}]
	return ok
}

// runState carries one run's open batch and the manifest as last written.
type runState struct {
	o       RunOptions
	man     *Manifest
	manPath string // root-relative
	// prevCID is the CID of the manifest file as this run read it,
	// undefined when there was none. The file itself is added as the
	// previous manifest at the first commit, read again from disk: its
	// bytes are not held through the run, and what is added must hash to
	// this CID, so a file changed behind the lock is not chained unseen.
	prevCID   cid.Cid
	prevAdded bool
	res       *Result
	now       string
	batch     Batch
	// The run appends its records to man.Records: those from base on are
	// the run's, those from committed on not yet written.
	base, committed int
	// buf holds the canonical form, then the rendered manifest, at each
	// commit (Manifest.marshalInto): one buffer for every commit of a run.
	buf []byte
}

// pending counts the records not yet written.
func (r *runState) pending() int { return len(r.man.Records) - r.committed }

// newRunState starts the run state for a manifest read as oldBytes (nil:
// there was none).
func newRunState(o RunOptions, man *Manifest, oldBytes []byte, res *Result) (*runState, error) {
	r := &runState{o: o, man: man, manPath: o.Paths.Manifest, res: res, now: o.Now().UTC().Format(time.RFC3339),
		base: len(man.Records), committed: len(man.Records)}
	if oldBytes != nil {
		c, err := node.ComputeCID(bytesReader(oldBytes), manifestParams, nil)
		if err != nil {
			return nil, fmt.Errorf("hashing the manifest: %w", err)
		}
		r.prevCID = c
	}
	return r, nil
}

func (r *runState) open(ctx context.Context) error {
	if r.o.OpenBatch == nil {
		return nil
	}
	b, err := r.o.OpenBatch(ctx)
	if err != nil {
		return err
	}
	r.batch = b
	return nil
}

func (r *runState) abort() {
	if r.batch != nil {
		r.batch.Abort()
	}
}

// commit records the pending records: the previous manifest and the new one
// are added next to the run's files, everything is pinned under one root and
// synced, and only then is the manifest file replaced. mark, when set,
// advances the processed-events watermark and makes this the run's final
// commit; without it the commit is a checkpoint.
//
// Every manifest a run writes names the manifest the run started from as
// its previous_manifest_cid, checkpoints included, and only the final one
// becomes the repo's chain head: the chain gains one link per run however
// many checkpoints it saved (the checkpoints are signed, pinned manifests
// off the chain, each a descendant of the head). A run killed after a
// checkpoint leaves that checkpoint in the tree, a descendant of the head;
// the next run chains onto it, so such a run adds two links.
func (r *runState) commit(ctx context.Context, mark *Watermark) error {
	man := r.man
	r.committed = len(man.Records)
	// The result shares the manifest's records (capacity cut, so the
	// run's later appends never write into it).
	r.res.Records = man.Records[r.base:len(man.Records):len(man.Records)]
	if mark != nil {
		man.Processed = *mark
	}
	if r.prevCID.Defined() {
		if !r.prevAdded {
			if _, err := r.addPrevious(); err != nil {
				return err
			}
		}
		if r.batch != nil {
			r.batch.Link("previous-manifest.json", r.prevCID)
		}
		man.PreviousCID = r.prevCID.String()
		r.res.PreviousCID = man.PreviousCID
	}
	if err := man.Touch(r.o.Now(), r.o.Provider); err != nil {
		return err
	}
	newBytes, err := r.marshal()
	if err != nil {
		return err
	}
	r.buf = newBytes[:0]
	mc, err := addBytes(r.batch, newBytes)
	if err != nil {
		return fmt.Errorf("adding the new manifest: %w", err)
	}
	if r.res.Rewritten {
		r.res.Checkpoints = append(r.res.Checkpoints, r.res.ManifestCID)
	}
	r.res.ManifestCID = mc.String()
	if r.batch == nil {
		return nil
	}
	r.batch.Link("manifest.json", mc)
	t0 := time.Now()
	root, err := r.batch.Commit("ssid-anchor run " + r.now)
	if err != nil {
		return err
	}
	r.o.Log.Debug("blocks and pin durable", "root", root, "took", time.Since(t0))
	r.batch = nil
	r.res.RunRoot = root.String()
	if err := r.o.Root.WriteFileAtomic(r.manPath, newBytes, 0o644); err != nil {
		return fmt.Errorf("writing manifest %s: %w", r.manPath, err)
	}
	// The manifest the run started from is durable and pinned under this
	// commit's root: later commits link it without adding it again.
	r.prevAdded = true
	r.res.Rewritten = true
	if mark == nil {
		return r.open(ctx)
	}
	if r.o.OnCommit != nil {
		if err := r.o.OnCommit(mc.String()); err != nil {
			return err
		}
	}
	return nil
}

// addPrevious adds the manifest file the run replaces, read again from
// disk, and checks it is the file the run read. A dry run only needs its
// CID.
func (r *runState) addPrevious() (cid.Cid, error) {
	if r.batch == nil {
		return r.prevCID, nil
	}
	f, err := r.o.Root.Open(r.manPath)
	if err != nil {
		return cid.Undef, fmt.Errorf("adding the previous manifest: %w", err)
	}
	defer f.Close()
	c, err := r.batch.AddFile(io.LimitReader(f, maxManifestSize+1), manifestParams, nil)
	if err != nil {
		return cid.Undef, fmt.Errorf("adding the previous manifest: %w", err)
	}
	if !c.Equals(r.prevCID) {
		return cid.Undef, fmt.Errorf("manifest %s changed on disk during the run (it was %s when read, it is %s now), not through ssid-anchor, which holds its lock; nothing was written: check the change and run again", r.manPath, r.prevCID, c)
	}
	return c, nil
}

// marshal renders the manifest, signed unless the run is dry (a dry run
// writes nothing and has no key to sign with).
func (r *runState) marshal() ([]byte, error) {
	if r.res.DryRun {
		return r.man.MarshalUnsigned()
	}
	r.res.SignedBy = r.o.Signer.PeerID()
	// Handed over, not kept: when the manifest has outgrown it, the old
	// buffer is garbage before the new one is made.
	buf := r.buf
	r.buf = nil
	return r.man.marshalInto(r.o.Signer, buf)
}

func mustCID(s string) cid.Cid {
	c, err := cid.Decode(s)
	if err != nil {
		panic(err)
	}
	return c
}

// manifestParams are fixed so a manifest's CID never depends on the
// anchoring profile: anyone can check the chain with plain `ipfs add`.
var manifestParams, _ = node.ParamsFor(node.CIDProfileDefault)

func addBytes(b Batch, data []byte) (cid.Cid, error) {
	r := bytesReader(data)
	if b == nil {
		return node.ComputeCID(r, manifestParams, nil)
	}
	return b.AddFile(r, manifestParams, nil)
}

type workItem struct {
	path string
	ev   *eventInfo
}

// eventInfo is an event with the fields its records copy, read once for
// all the files it selects (their records share the strings).
type eventInfo struct {
	ev                              tree.Event
	name, version, timestamp, proof string
}

func newEventInfo(e tree.Event) *eventInfo {
	return &eventInfo{ev: e, name: e.Name(), version: e.Field("version"), timestamp: e.Field("timestamp"), proof: e.ProofAnchor}
}

// collect scans the log for events past the watermark (and, with
// Reprocess, the past ones asked for) and returns the files they select,
// each with the newest event that selected it.
//
// onWork, when set, is called before the first event that will be taken
// is selected (the selection's walk of the tree is the slow part), so the
// run can prepare in parallel.
func collect(o RunOptions, sel *Selector, mark Watermark, res *Result, onWork func()) ([]workItem, Watermark, error) {
	type pick struct {
		ev    *eventInfo
		order int
	}
	early := map[string]pick{} // events at or before the old watermark
	late := map[string]pick{}
	var (
		count     int
		markValid bool
		order     int
		lateEvs   int
		again     = strings.ToLower(strings.TrimSpace(o.Reprocess))
		retake    = again == "all"
		found     = again == "" || retake
		early0    Result // unmatched globs of events before the watermark
	)
	// Past events are needed only with Reprocess; otherwise the read
	// resumes at the watermark's cursor when the log still has its bytes.
	var from *tree.Cursor
	if again == "" {
		from = mark.cursor()
	}
	next, info, bad, err := o.Root.ReadEventsFrom(o.Paths.EventsLog, from, func(e tree.Event) error {
		count = e.Index
		if count == mark.Count && e.ProofAnchor == mark.Last {
			markValid = true
		}
		if !retake && again != "" && e.ProofAnchor == again {
			retake, found = true, true
		}
		if onWork != nil && (count > mark.Count || retake) {
			onWork()
			onWork = nil
		}
		files, none, err := sel.Select(e)
		if err != nil {
			return err
		}
		dst := late
		switch {
		case count > mark.Count:
			lateEvs++
			res.addUnmatched(none)
		case retake:
			res.Reprocessed++
			res.addUnmatched(none)
		default:
			dst = early
			early0.addUnmatched(none)
		}
		if len(files) > 0 {
			info := newEventInfo(e)
			for _, f := range files {
				order++
				dst[f] = pick{info, order}
			}
		}
		return nil
	})
	res.BadBlocks = bad
	res.read = info
	if info.Mode == tree.ReadAppended {
		// The tail matched: the log still starts with the watermark's events.
		markValid = true
	} else if info.Mode == tree.ReadRewritten {
		o.Log.Info("registry log changed before the anchoring cursor; read it again from the start", "log", o.Paths.EventsLog)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, mark, fmt.Errorf("registry events log %s does not exist (set paths.events_log or run `ssid-anchor event` to start one)", o.Paths.EventsLog)
	}
	if err != nil {
		return nil, mark, err
	}
	if !found {
		return nil, mark, fmt.Errorf("--reprocess %s: %w %s (give a proof anchor that `ssid-anchor event` printed, or all)", o.Reprocess, ErrReprocessNotFound, o.Paths.EventsLog)
	}
	picks := late
	res.NewEvents = lateEvs
	if !markValid {
		late0 := *res
		res.Unmatched, res.UnmatchedOmitted = []Unmatched{}, early0.UnmatchedOmitted
		res.addUnmatched(early0.Unmatched)
		res.addUnmatched(late0.Unmatched)
		res.UnmatchedOmitted += late0.UnmatchedOmitted
		// The log no longer matches the watermark: look at everything again.
		res.NewEvents = next.Count
		for f, p := range early {
			if q, ok := late[f]; !ok || q.order < p.order {
				late[f] = p
			}
		}
		picks = late
	}
	items := make([]workItem, 0, len(picks))
	for f, p := range picks {
		items = append(items, workItem{path: f, ev: p.ev})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].path < items[j].path })
	return items, watermarkAt(next), nil
}

// maxUnmatched bounds the unmatched globs a result lists: a first run over
// a million-event log with a rule that matches nothing must not hold a
// million entries.
const maxUnmatched = 1000

func (r *Result) addUnmatched(u []Unmatched) {
	room := max(0, maxUnmatched-len(r.Unmatched))
	if len(u) > room {
		r.UnmatchedOmitted += len(u) - room
		u = u[:room]
	}
	r.Unmatched = append(r.Unmatched, u...)
}

// recheckMax bounds the files whose content is checked before it is added
// (anchorKnown): a changed file below it is read twice, which costs little;
// a larger one is added at once, as before, and shows one progress bar.
const recheckMax = 16 << 20

// fileRead is what reading one selected file gave.
type fileRead struct {
	rec Record
	// st is the file's metadata before the read; stable says it was the
	// same after, so the stat cache may remember st with the hash.
	st     statcache.Stat
	stable bool
}

// checkUnchanged reports, for each item of work, whether the stat cache
// vouches for it (a known path whose metadata is what a run saw when it
// hashed it, with that hash recorded for the path). The known paths are
// stat'ed directory by directory, each directory opened once (tree.Dir:
// one fstatat per file instead of resolving its whole path), on every core.
func checkUnchanged(root tree.Root, c *statcache.Cache, work []workItem, known map[string]bool, recorded identities) []bool {
	same := make([]bool, len(work))
	// Groups of indices into work that share a directory. work is sorted
	// by path, but a directory's files and its subdirectories' interleave,
	// so group through a map.
	byDir := map[string][]int{}
	var dirs []string
	for i := range work {
		if !known[work[i].path] {
			continue
		}
		dir := path.Dir(work[i].path)
		if _, ok := byDir[dir]; !ok {
			dirs = append(dirs, dir)
		}
		byDir[dir] = append(byDir[dir], i)
	}
	next := make(chan string, 64)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for dir := range next {
				idx := byDir[dir]
				d, ok, err := root.OpenDir(dir)
				if err != nil {
					continue // read as changed: the run will say why
				}
				for _, i := range idx {
					p := work[i].path
					var fi fs.FileInfo
					if ok {
						fi, err = d.Stat(path.Base(p))
					} else {
						fi, err = root.Stat(p)
					}
					same[i] = err == nil && vouches(c, p, fi, recorded)
				}
				if ok {
					d.Close()
				}
			}
		}()
	}
	for _, dir := range dirs {
		next <- dir
	}
	close(next)
	wg.Wait()
	return same
}

// vouches reports whether the stat cache vouches for the file rel whose
// metadata is fi: a regular file whose metadata is what a run saw when it
// hashed it, and the manifest records that hash for the path.
func vouches(c *statcache.Cache, rel string, fi fs.FileInfo, recorded identities) bool {
	if !fi.Mode().IsRegular() {
		return false
	}
	st, ok := statcache.Of(fi)
	if !ok {
		return false
	}
	hash, ok := c.Lookup(rel, st)
	return ok && recorded.has(rel, hash)
}

// anchorKnown anchors one selected file. A file at a path the manifest
// already records is, on most runs, unchanged (a ** rule selects the whole
// tree for every event): it is hashed without storing anything first, and
// added only when its content is new. An unchanged file then costs one read
// instead of one read plus a write of every block into the repo.
func anchorKnown(ctx context.Context, o RunOptions, b Batch, rel string, known bool, recorded identities) (fileRead, error) {
	if b == nil || !known {
		return anchorFile(ctx, o, b, rel)
	}
	if st, err := o.Root.Stat(rel); err != nil || st.Size() > recheckMax {
		return anchorFile(ctx, o, b, rel)
	}
	q := o
	q.OnFile = nil
	fr, err := anchorFile(ctx, q, nil, rel)
	if err != nil || recorded.has(fr.rec.FilePath, fr.rec.FileHash) {
		return fr, err
	}
	return anchorFile(ctx, o, b, rel)
}

// anchorFile hashes and adds one file in a single read; the importer runs
// the file's SHA-256 beside the block hashing.
func anchorFile(ctx context.Context, o RunOptions, b Batch, rel string) (fileRead, error) {
	f, err := o.Root.Open(rel)
	if err != nil {
		return fileRead{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileRead{}, err
	}
	if !st.Mode().IsRegular() {
		return fileRead{}, fmt.Errorf("not a regular file")
	}
	if st.Size() >= parallelHashMin {
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	}
	o.Log.Debug("adding file", "file", rel, "size", st.Size())
	var progress func(int)
	if o.OnFile != nil {
		progress = o.OnFile(rel, st.Size())
	}
	// Synchronous: the importer already calls observe on a goroutine of its
	// own, beside the block hashing, and reuses the chunk's buffer after.
	h := newFileHasher(0)
	observe := func(p []byte) {
		h.write(p)
		if progress != nil {
			progress(len(p))
		}
	}
	// Read at most one byte past the size stat gave: a file that keeps
	// growing while it is read (a log being written) ends the read there
	// and is reported as changed below, instead of being read for ever.
	r := ctxReader{ctx, io.LimitReader(f, st.Size()+1)}
	var c cid.Cid
	if b == nil {
		c, err = node.ComputeCID(r, o.Params, observe)
	} else {
		c, err = b.AddFile(r, o.Params, observe)
	}
	sum, n := h.sum()
	if err != nil {
		return fileRead{}, err
	}
	if n != st.Size() {
		return fileRead{}, fmt.Errorf("file changed while it was read (%d bytes read, %d expected); run again", n, st.Size())
	}
	fr := fileRead{rec: Record{
		FilePath: rel,
		FileName: path.Base(rel),
		FileHash: sum,
		IPFSCID:  c.String(),
		FileSize: n,
	}}
	if before, ok := statcache.Of(st); ok {
		if after, err := f.Stat(); err == nil {
			now, ok := statcache.Of(after)
			fr.st, fr.stable = before, ok && now == before
		}
	}
	return fr, nil
}

// fileHasher computes a file's SHA-256 from chunks it is shown. Above
// parallelHashMin it runs on its own goroutine and keeps the slices it is
// given until sum, so the caller must not reuse them (verification's block
// reader does not); below, or with size 0, it hashes in write.
type fileHasher struct {
	h    hash.Hash
	n    int64
	ch   chan []byte
	done chan struct{}
}

const parallelHashMin = 4 << 20

func newFileHasher(size int64) *fileHasher {
	fh := &fileHasher{h: sha256.New()}
	if size >= parallelHashMin {
		fh.ch = make(chan []byte, 16)
		fh.done = make(chan struct{})
		go func() {
			defer close(fh.done)
			for p := range fh.ch {
				fh.h.Write(p)
			}
		}()
	}
	return fh
}

func (fh *fileHasher) write(p []byte) {
	fh.n += int64(len(p))
	if fh.ch != nil {
		fh.ch <- p
		return
	}
	fh.h.Write(p)
}

func (fh *fileHasher) sum() (string, int64) {
	if fh.ch != nil {
		close(fh.ch)
		<-fh.done
	}
	return hex.EncodeToString(fh.h.Sum(nil)), fh.n
}

// ctxReader stops a long read when the run is interrupted.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
