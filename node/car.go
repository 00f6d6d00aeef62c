package node

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	pin "github.com/ipfs/boxo/pinning/pinner"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	carstorage "github.com/ipld/go-car/v2/storage"
	"github.com/multiformats/go-varint"
)

// CARSet verifies anchors from CAR files with no repo. Opening it reads each
// file's section headers only (CID, offset, size) and keeps that index; block
// bytes are read by offset when a check needs them and hashed then, once.
// Memory is a few dozen bytes per block, whatever the DAG size. At most
// maxOpenCARs files are open at once (export writes a CAR per anchor, and
// 20,000 of them would exceed the usual limit of open files); each is
// closed after indexing and reopened when a block of it is read.
type CARSet struct {
	files []*carFile
	locs  []blockLoc
	index map[string]int // CID key -> first loc with that CID

	mu       sync.Mutex
	problems map[int][]string // per file

	fds fdCache

	// bytes is the size of the CAR files; budget is how many block bytes
	// the walks of records without a trusted size may still read (see
	// ReadFile).
	bytes    int64
	budgetMu sync.Mutex
	budget   int64
}

type carFile struct {
	path   string
	label  string // how problems name the file
	roots  []cid.Cid
	blocks int
}

// maxOpenCARs bounds the CAR files a CARSet keeps open.
const maxOpenCARs = 64

// fdCache keeps the most recently read CAR files open, at most max of them
// that no read is using.
type fdCache struct {
	mu   sync.Mutex
	max  int
	open map[int]*openCAR
	lru  list.List // of file index, most recent first
	// peak is the most files that were open at once (for tests).
	peak int
}

type openCAR struct {
	f     *os.File
	users int
	elem  *list.Element
}

func (c *fdCache) acquire(fi int, path string) (*openCAR, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open = map[int]*openCAR{}
	}
	if o, ok := c.open[fi]; ok {
		o.users++
		c.lru.MoveToFront(o.elem)
		return o, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	o := &openCAR{f: f, users: 1, elem: c.lru.PushFront(fi)}
	c.open[fi] = o
	for e := c.lru.Back(); e != nil && len(c.open) > c.max; {
		prev := e.Prev()
		if v := c.open[e.Value.(int)]; v.users == 0 {
			v.f.Close()
			delete(c.open, e.Value.(int))
			c.lru.Remove(e)
		}
		e = prev
	}
	c.peak = max(c.peak, len(c.open))
	return o, nil
}

func (c *fdCache) release(o *openCAR) {
	c.mu.Lock()
	o.users--
	c.mu.Unlock()
}

func (c *fdCache) closeAll() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for fi, o := range c.open {
		if err := o.f.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.open, fi)
	}
	c.lru.Init()
	return first
}

// readAt reads block bytes of file fi at off.
func (s *CARSet) readAt(fi int, buf []byte, off int64) error {
	o, err := s.fds.acquire(fi, s.files[fi].path)
	if err != nil {
		return err
	}
	defer s.fds.release(o)
	_, err = o.f.ReadAt(buf, off)
	return err
}

// Block states in blockLoc.state.
const (
	locUnchecked int32 = iota
	locGood
	locBad
)

type blockLoc struct {
	c     cid.Cid
	file  int
	off   int64
	size  int64
	state atomic.Int32
	// leaf: checked and has no links, so the completeness walk in Reports
	// need not read it again.
	leaf atomic.Bool
}

// isLeaf tells from checked bytes whether a block links to nothing: dag-pb
// writes its links (field 2, tag 0x12) before its data.
func isLeaf(c cid.Cid, data []byte) bool {
	return c.Prefix().Codec == cid.Raw || len(data) == 0 || data[0] != 0x12
}

// CARReport is what was found about one CAR file.
type CARReport struct {
	Path     string   `json:"file"`
	Roots    []string `json:"roots"`
	Blocks   int      `json:"blocks"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// maxSection refuses absurd section lengths before reading them (kubo's
// blocks are at most 2 MiB; a corrupt varint must not make us allocate GiBs).
const maxSection = 8 << 20

// OpenCARs indexes CAR files (v1 or v2). A file that cannot be opened is an
// error; a file that is damaged part-way (truncated, garbage) keeps the
// blocks before the damage, and the damage is reported by Reports.
func OpenCARs(paths []string) (*CARSet, error) {
	s := &CARSet{index: map[string]int{}, problems: map[int][]string{}, fds: fdCache{max: maxOpenCARs}}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("opening CAR: %w", err)
		}
		cf := &carFile{path: p, label: "car " + p}
		s.files = append(s.files, cf)
		if st, err := f.Stat(); err == nil {
			s.bytes += st.Size()
		}
		s.indexFile(len(s.files)-1, cf, f)
		f.Close()
	}
	s.budget = MaxDAGBytes(s.bytes) + untrustedFloor
	return s, nil
}

func (s *CARSet) indexFile(fi int, cf *carFile, f *os.File) {
	br, err := carv2.NewBlockReader(f, carv2.MaxAllowedSectionSize(maxSection))
	if err != nil {
		s.problem(fi, fmt.Sprintf("not a readable CAR: %v", err))
		return
	}
	cf.roots = br.Roots
	if len(br.Roots) == 0 {
		s.problem(fi, "declares no root")
	}
	for {
		md, err := br.SkipNext()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected EOF") {
				s.problem(fi, fmt.Sprintf("truncated: the file ends inside block section %d (%v)", cf.blocks+1, err))
			} else {
				s.problem(fi, fmt.Sprintf("damaged after block %d: %v", cf.blocks, err))
			}
			return
		}
		section := uint64(md.Cid.ByteLen()) + md.Size
		dataOff := int64(md.SourceOffset) + int64(varint.UvarintSize(section)) + int64(md.Cid.ByteLen())
		s.locs = append(s.locs, blockLoc{c: md.Cid, file: fi, off: dataOff, size: int64(md.Size)})
		if _, ok := s.index[md.Cid.KeyString()]; !ok {
			s.index[md.Cid.KeyString()] = len(s.locs) - 1
		}
		cf.blocks++
	}
}

func (s *CARSet) problem(fi int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.problems[fi] {
		if m == msg {
			return
		}
	}
	s.problems[fi] = append(s.problems[fi], msg)
}

// Close closes every file.
func (s *CARSet) Close() error {
	return s.fds.closeAll()
}

// Name says where the blocks come from.
func (s *CARSet) Name() string {
	if len(s.files) == 1 {
		return s.files[0].label
	}
	return fmt.Sprintf("%d CAR files", len(s.files))
}

func (s *CARSet) where(l *blockLoc) string { return s.files[l.file].label }

// raw returns the stored bytes of c without hashing them.
func (s *CARSet) raw(_ context.Context, c cid.Cid) ([]byte, *blockLoc, error) {
	i, ok := s.index[c.KeyString()]
	if !ok {
		return nil, nil, &BlockError{CID: c, Where: s.Name(), Kind: ErrBlockMissing}
	}
	l := &s.locs[i]
	buf := make([]byte, l.size)
	if err := s.readAt(l.file, buf, l.off); err != nil {
		return nil, nil, fmt.Errorf("reading block %s from %s: %w", c, s.where(l), err)
	}
	return buf, l, nil
}

func (s *CARSet) getBlock(ctx context.Context, c cid.Cid) ([]byte, error) {
	data, l, err := s.raw(ctx, c)
	if err != nil {
		return nil, err
	}
	switch l.state.Load() {
	case locGood:
		return data, nil
	case locBad:
		return nil, &BlockError{CID: c, Where: s.where(l), Kind: ErrBlockCorrupt}
	}
	if err := s.settle(l, checkHash(c, data)); err != nil {
		return nil, err
	}
	l.leaf.Store(isLeaf(c, data))
	return data, nil
}

func (s *CARSet) getBlocks(ctx context.Context, cs []cid.Cid) ([][]byte, error) {
	return parallelGet(ctx, s, cs)
}

// settle records a block's verdict; a bad block is also a problem of its CAR.
func (s *CARSet) settle(l *blockLoc, good bool) error {
	if good {
		l.state.Store(locGood)
		return nil
	}
	l.state.Store(locBad)
	s.problem(l.file, fmt.Sprintf("block %s does not match its CID (the file is corrupt)", l.c))
	return &BlockError{CID: l.c, Where: s.where(l), Kind: ErrBlockCorrupt}
}

// CheckFile re-chunks r with p and checks every block it produces against
// the copy in the CARs; equal bytes prove a CAR block without hashing it.
func (s *CARSet) CheckFile(ctx context.Context, r io.Reader, p ImportParams, observe func([]byte)) (FileCheck, error) {
	return checkFile(ctx, r, p, observe, func(ctx context.Context, c cid.Cid, want []byte) error {
		got, l, err := s.raw(ctx, c)
		if err != nil {
			return err
		}
		if l.state.Load() == locBad {
			return &BlockError{CID: c, Where: s.where(l), Kind: ErrBlockCorrupt}
		}
		if string(got) == string(want) {
			l.state.Store(locGood)
			l.leaf.Store(isLeaf(c, got))
			return nil
		}
		return s.settle(l, checkHash(c, got))
	})
}

// ReadFile rebuilds the file at c from the CARs, checking each block, and
// stops once the blocks read exceed maxBytes (see MaxDAGBytes).
//
// maxBytes <= 0 means the record gives no size (the seed manifest's records
// have no file_size). The size the root block declares is then the
// attacker's word, not a limit: a CAR of a few hundred KB can declare
// 256 TB and link one block a billion times. Such walks are bounded by the
// CARs themselves instead: together they may read what the CAR files hold
// (plus untrustedFloor, for the legitimate file of repeated chunks that
// its CAR stores once), however many records point into them, so verify
// --car ends in about the time it takes to read its CARs.
func (s *CARSet) ReadFile(ctx context.Context, c cid.Cid, maxBytes int64, w io.Writer) (int, error) {
	if maxBytes > 0 {
		return readFile(ctx, s, c, maxBytes, w)
	}
	data, err := s.getBlock(ctx, c)
	if err != nil {
		return 0, err
	}
	declared := MaxDAGBytes(declaredSize(c, data))
	limit := s.reserve(declared)
	if limit <= 0 {
		return 0, &CARLimitError{CID: c, CARBytes: s.bytes}
	}
	cw := &countWriter{w: w}
	n, err := readFile(ctx, s, c, limit, cw)
	used := cw.n
	var le *DAGLimitError
	if errors.As(err, &le) {
		used = limit
		if limit < declared {
			err = &CARLimitError{CID: c, Limit: limit, CARBytes: s.bytes}
		} else {
			le.Declared = true
		}
	}
	s.refund(limit - used)
	return n, err
}

// untrustedFloor is what walks without a trusted size may read beyond the
// size of the CARs: a file of repeated chunks (zeros, padding) is stored
// once per distinct chunk, so its CAR is far smaller than the file.
const untrustedFloor = 256 << 20

// reserve takes up to want bytes from the budget of untrusted walks.
func (s *CARSet) reserve(want int64) int64 {
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	got := min(want, s.budget)
	s.budget -= got
	return got
}

func (s *CARSet) refund(n int64) {
	if n <= 0 {
		return
	}
	s.budgetMu.Lock()
	s.budget += n
	s.budgetMu.Unlock()
}

// CARLimitError stops the walk of a record without a trusted size (no
// file_size) once the CARs' budget is spent. It matches ErrDAGTooLarge.
type CARLimitError struct {
	CID      cid.Cid
	Limit    int64 // 0: the budget was spent by earlier records
	CARBytes int64
}

func (e *CARLimitError) Error() string {
	const why = "the size a root declares is not trusted; verify with the file itself, or with a manifest whose records carry file_size"
	if e.Limit == 0 {
		return fmt.Sprintf("the DAG under %s was not read: records without file_size already read all that %d bytes of CAR files allow (%s)", e.CID, e.CARBytes, why)
	}
	return fmt.Sprintf("the DAG under %s reads more than %d bytes, all that records without file_size may still read from %d bytes of CAR files: refusing to walk further (%s)", e.CID, e.Limit, e.CARBytes, why)
}

func (e *CARLimitError) Unwrap() error { return ErrDAGTooLarge }

// Reports finishes the check of every file: each root must be a CID the
// caller vouches for (known) and a complete DAG, and every block not yet
// checked by a file check is hashed now. known may be nil to accept any
// root.
func (s *CARSet) Reports(ctx context.Context, known func(cid.Cid) bool) []CARReport {
	for fi, cf := range s.files {
		for _, r := range cf.roots {
			if known != nil && !known(r) {
				s.problem(fi, fmt.Sprintf("root %s is not a record's CID nor a manifest of the chain: the CAR carries content the manifest does not vouch for", r))
			}
			if err := s.complete(ctx, r); err != nil {
				s.problem(fi, fmt.Sprintf("root %s is not a complete DAG: %v", r, err))
			}
		}
	}
	for i := range s.locs {
		if ctx.Err() != nil {
			break // the caller sees ctx.Err(); an interrupted check is no verdict
		}
		l := &s.locs[i]
		if l.state.Load() != locUnchecked {
			continue
		}
		buf := make([]byte, l.size)
		if err := s.readAt(l.file, buf, l.off); err != nil {
			s.problem(l.file, fmt.Sprintf("reading block %s: %v", l.c, err))
			continue
		}
		_ = s.settle(l, checkHash(l.c, buf))
	}
	out := make([]CARReport, len(s.files))
	for fi, cf := range s.files {
		rep := CARReport{Path: cf.path, Blocks: cf.blocks, Roots: []string{}}
		for _, r := range cf.roots {
			rep.Roots = append(rep.Roots, r.String())
		}
		s.mu.Lock()
		rep.Problems = append([]string(nil), s.problems[fi]...)
		s.mu.Unlock()
		rep.OK = len(rep.Problems) == 0
		out[fi] = rep
	}
	return out
}

// complete checks that every block under root is in the set and intact.
// Leaves already checked by a file check are not read again, so a CAR whose
// anchor was just verified costs only its internal nodes here.
func (s *CARSet) complete(ctx context.Context, root cid.Cid) error {
	checkedLeaf := func(c cid.Cid) bool {
		i, ok := s.index[c.KeyString()]
		return ok && s.locs[i].state.Load() == locGood && s.locs[i].leaf.Load()
	}
	return walkDAGSkipping(ctx, s, root, checkedLeaf, nil)
}

// ExportResult describes one written CAR.
type ExportResult struct {
	Root   string `json:"root"`
	Blocks int    `json:"blocks"`
	Bytes  int64  `json:"bytes"`
}

// ExportCAR writes the DAG under root from the repo to w as a CARv1 with one
// root, blocks depth first without duplicates (as `ipfs dag export`). Every
// block is checked against its CID on the way out.
func (n *Node) ExportCAR(ctx context.Context, root cid.Cid, w io.Writer) (ExportResult, error) {
	cw := &countWriter{w: w}
	car, err := carstorage.NewWritable(cw, []cid.Cid{root}, carv2.WriteAsCarV1(true))
	if err != nil {
		return ExportResult{}, fmt.Errorf("starting CAR: %w", err)
	}
	res := ExportResult{Root: root.String()}
	err = walkDAG(ctx, repoBlocks{n}, root, func(c cid.Cid, data []byte) error {
		res.Blocks++
		return car.Put(ctx, c.KeyString(), data)
	})
	if err != nil {
		return res, err
	}
	if err := car.Finalize(); err != nil {
		return res, fmt.Errorf("finishing CAR: %w", err)
	}
	res.Bytes = cw.n
	return res, nil
}

// ExportCARFile writes root's CAR to path atomically (temp file, fsync,
// rename), so an interrupted export never leaves a half CAR with the final
// name.
func (n *Node) ExportCARFile(ctx context.Context, root cid.Cid, path string) (ExportResult, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return ExportResult{}, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	res, err := n.ExportCAR(ctx, root, f)
	if err != nil {
		return res, err
	}
	if err := f.Sync(); err != nil {
		return res, err
	}
	if err := f.Close(); err != nil {
		return res, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return res, err
	}
	ok = true
	return res, nil
}

// ExportTarget is one CAR for ExportCARFiles to write.
type ExportTarget struct {
	Root cid.Cid
	Path string
}

// ExportCARFiles writes every target's CAR as ExportCARFile does, but makes
// them durable together: each CAR is written to a temp file beside its
// path, one syncfs(2) per directory flushes them all, then each is renamed
// to its name and the directory is flushed again. A crash leaves complete
// CARs under their names and temp files, never a half CAR under its name,
// and an export of 20,000 anchors costs two flushes instead of 20,000
// fsyncs. errs[i] says why target i was not written; the error returned
// (interrupted, a flush or rename failing) means none may be trusted, and
// the temp files are removed.
func (n *Node) ExportCARFiles(ctx context.Context, targets []ExportTarget) (results []ExportResult, errs []error, err error) {
	return n.ExportCARFilesFunc(ctx, targets, nil)
}

// ExportCARFilesFunc is ExportCARFiles calling done, when set, once each
// target's CAR is written (before the flush that makes them all durable)
// or has failed: progress lines.
func (n *Node) ExportCARFilesFunc(ctx context.Context, targets []ExportTarget, done func(i int, r ExportResult, err error)) (results []ExportResult, errs []error, err error) {
	results, errs = make([]ExportResult, len(targets)), make([]error, len(targets))
	temps := make([]string, len(targets))
	defer func() {
		for _, t := range temps {
			if t != "" {
				os.Remove(t)
			}
		}
	}()
	dirs := map[string]bool{}
	for i, t := range targets {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		dir := filepath.Dir(t.Path)
		dirs[dir] = true
		f, err := os.CreateTemp(dir, "."+filepath.Base(t.Path)+".tmp-*")
		if err != nil {
			return nil, nil, err
		}
		temps[i] = f.Name()
		results[i], errs[i] = n.ExportCAR(ctx, t.Root, f)
		if cerr := f.Close(); cerr != nil && errs[i] == nil {
			errs[i] = cerr
		}
		if errs[i] != nil {
			os.Remove(temps[i])
			temps[i] = ""
		}
		if done != nil {
			done(i, results[i], errs[i])
		}
	}
	for dir := range dirs {
		if err := syncFS(dir); err != nil {
			return nil, nil, fmt.Errorf("syncing the CARs in %s to disk: %w", dir, err)
		}
	}
	for i, t := range targets {
		if temps[i] == "" {
			continue
		}
		if err := os.Rename(temps[i], t.Path); err != nil {
			return nil, nil, err
		}
		temps[i] = ""
	}
	for dir := range dirs {
		if err := syncFS(dir); err != nil {
			return nil, nil, fmt.Errorf("syncing %s to disk: %w", dir, err)
		}
	}
	return results, errs, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ImportResult describes one imported CAR.
type ImportResult struct {
	Path   string   `json:"file"`
	Roots  []string `json:"roots"`
	Blocks int      `json:"blocks"`
	Bytes  int64    `json:"bytes"`
}

// ErrBadCAR marks a CAR refused by ImportCAR; nothing of it was stored.
var ErrBadCAR = errors.New("CAR refused")

// ImportCAR stores a CAR's DAGs in the repo and pins its roots recursively.
// Before storing anything it checks every block against its CID and that
// each root is a complete DAG inside the CAR; a CAR failing either is
// refused whole. Blocks not under a root are not stored. The GC pin lock is
// held from the first block to the pin, and blocks are on disk before the
// pin points at them.
func (n *Node) ImportCAR(ctx context.Context, path, pinName string) (ImportResult, error) {
	res := ImportResult{Path: path, Roots: []string{}}
	set, err := OpenCARs([]string{path})
	if err != nil {
		return res, err
	}
	defer set.Close()
	cf := set.files[0]
	for _, r := range cf.roots {
		res.Roots = append(res.Roots, r.String())
	}
	rep := set.Reports(ctx, nil)[0]
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if !rep.OK {
		return res, fmt.Errorf("%w: %s: %s", ErrBadCAR, path, strings.Join(rep.Problems, "; "))
	}
	unlocker := n.ipfs.Blockstore.PinLock(ctx)
	defer unlocker.Unlock(ctx)
	var batch []blocks.Block
	var batchBytes int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := n.ipfs.Blockstore.PutMany(ctx, batch); err != nil {
			return fmt.Errorf("storing blocks: %w", err)
		}
		batch, batchBytes = nil, 0
		return nil
	}
	seen := map[string]struct{}{}
	for _, r := range cf.roots {
		err := walkDAG(ctx, set, r, func(c cid.Cid, data []byte) error {
			if _, ok := seen[c.KeyString()]; ok {
				return nil
			}
			seen[c.KeyString()] = struct{}{}
			b, err := blocks.NewBlockWithCid(data, c)
			if err != nil {
				return err
			}
			res.Blocks++
			res.Bytes += int64(len(data))
			batch = append(batch, b)
			batchBytes += len(data)
			if len(batch) >= 256 || batchBytes >= 16<<20 {
				return flush()
			}
			return nil
		})
		if err != nil {
			return res, err
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	if err := syncFS(n.blocksDir()); err != nil {
		return res, fmt.Errorf("syncing blocks to disk: %w", err)
	}
	for _, r := range cf.roots {
		if err := n.ipfs.Pinning.PinWithMode(ctx, r, pin.Recursive, pinName); err != nil {
			return res, fmt.Errorf("pinning %s: %w", r, err)
		}
	}
	if err := n.ipfs.Pinning.Flush(ctx); err != nil {
		return res, fmt.Errorf("flushing pins: %w", err)
	}
	if err := syncFS(n.blocksDir()); err != nil {
		return res, fmt.Errorf("syncing pins to disk: %w", err)
	}
	return res, nil
}

// Roots lists the distinct roots of every file, sorted.
func (s *CARSet) Roots() []cid.Cid {
	seen := map[string]cid.Cid{}
	for _, f := range s.files {
		for _, r := range f.roots {
			seen[r.KeyString()] = r
		}
	}
	out := make([]cid.Cid, 0, len(seen))
	for _, c := range seen {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
