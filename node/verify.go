package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	pin "github.com/ipfs/boxo/pinning/pinner"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Block problems that verification names. A *BlockError wraps one of them.
var (
	// ErrBlockMissing: the block is not where it was looked for.
	ErrBlockMissing = errors.New("block missing")
	// ErrBlockCorrupt: the block's bytes do not hash to its CID.
	ErrBlockCorrupt = errors.New("block does not match its CID")
)

// BlockError says which block failed, where, and why.
type BlockError struct {
	CID   cid.Cid
	Where string // "the repo", "car out/x.car", "peers", a gateway URL
	Kind  error  // ErrBlockMissing or ErrBlockCorrupt
	Cause error  // the underlying error, if any
}

func (e *BlockError) Error() string {
	msg := fmt.Sprintf("block %s: %v in %s", e.CID, e.Kind, e.Where)
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

func (e *BlockError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

// blockGetter is where verification reads blocks from: the repo, CAR files,
// peers or a gateway. getBlock returns bytes already checked against c.
type blockGetter interface {
	getBlock(ctx context.Context, c cid.Cid) ([]byte, error)
}

// batchGetter fetches several blocks in one go; network sources implement
// it so a file's chunks are requested together instead of one round trip
// each.
type batchGetter interface {
	getBlocks(ctx context.Context, cs []cid.Cid) ([][]byte, error)
}

// checkHash is the one place a block's bytes are compared to its CID.
func checkHash(c cid.Cid, data []byte) bool {
	got, err := c.Prefix().Sum(data)
	return err == nil && got.Equals(c)
}

// fileWindow bounds how many sibling blocks are held at once while a file is
// rebuilt: a few MiB per tree level, never the whole DAG.
const fileWindow = 16

// MaxDAGBytes is how many block bytes rebuilding a file of fileSize bytes may
// read, counting a block again each time the DAG links it again. The UnixFS
// DAGs both CID profiles build carry a few dozen bytes of links and framing
// per chunk of 256 KiB or more; 1/64 of the size plus 64 KiB is far above
// that. A DAG that reads more is not the file its record describes (for
// example a small DAG linking one block a billion times), so the walk stops
// there instead of running for days.
func MaxDAGBytes(fileSize int64) int64 {
	if fileSize < 0 {
		fileSize = 0
	}
	return fileSize + fileSize/64 + 64<<10
}

// ErrDAGTooLarge marks a walk stopped by its byte limit; a *DAGLimitError
// wraps it.
var ErrDAGTooLarge = errors.New("DAG reads more bytes than allowed")

// DAGLimitError says which DAG went over which limit.
type DAGLimitError struct {
	CID   cid.Cid
	Limit int64
	// Declared tells where the limit came from when no size was given.
	Declared bool
}

func (e *DAGLimitError) Error() string {
	src := "its record's file_size allows"
	if e.Declared {
		src = "the size its root block declares allows"
	}
	return fmt.Sprintf("the DAG under %s reads more than %d bytes, which is all %s: refusing to walk further (its blocks link the same content over and over, or the record is wrong)", e.CID, e.Limit, src)
}

func (e *DAGLimitError) Unwrap() error { return ErrDAGTooLarge }

// readFile rebuilds the UnixFS file at root from g, writing its bytes to w in
// order, and returns the number of blocks read. It stops with a
// *DAGLimitError once the blocks read (each repeat counted again) exceed
// maxBytes; maxBytes <= 0 takes MaxDAGBytes of the file size the root block
// declares (records written before file_size existed). The context is
// checked between blocks.
func readFile(ctx context.Context, g blockGetter, root cid.Cid, maxBytes int64, w io.Writer) (int, error) {
	data, err := g.getBlock(ctx, root)
	if err != nil {
		return 0, err
	}
	fw := &fileWalker{g: g, w: w, root: root, limit: maxBytes}
	if maxBytes <= 0 {
		fw.limit, fw.declared = MaxDAGBytes(declaredSize(root, data)), true
	}
	err = fw.node(ctx, root, data)
	return fw.blocks, err
}

// declaredSize is the file size a root block claims (0 when it claims none).
func declaredSize(c cid.Cid, data []byte) int64 {
	if c.Prefix().Codec == cid.Raw {
		return int64(len(data))
	}
	pn, err := merkledag.DecodeProtobuf(data)
	if err != nil {
		return 0
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return 0
	}
	return int64(min(fsn.FileSize(), uint64(1)<<62))
}

type fileWalker struct {
	g        blockGetter
	w        io.Writer
	blocks   int
	root     cid.Cid
	limit    int64
	read     int64
	declared bool
}

func (fw *fileWalker) node(ctx context.Context, c cid.Cid, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fw.blocks++
	fw.read += int64(len(data))
	if fw.read > fw.limit {
		return &DAGLimitError{CID: fw.root, Limit: fw.limit, Declared: fw.declared}
	}
	switch c.Prefix().Codec {
	case cid.Raw:
		_, err := fw.w.Write(data)
		return err
	case cid.DagProtobuf:
	default:
		return fmt.Errorf("block %s: codec 0x%x is not a UnixFS file", c, c.Prefix().Codec)
	}
	pn, err := merkledag.DecodeProtobuf(data)
	if err != nil {
		return fmt.Errorf("block %s: decoding dag-pb: %w", c, err)
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return fmt.Errorf("block %s: decoding UnixFS: %w", c, err)
	}
	switch fsn.Type() {
	case ft.TFile, ft.TRaw:
	default:
		return fmt.Errorf("block %s: UnixFS %s, not a file", c, fsn.Type())
	}
	if _, err := fw.w.Write(fsn.Data()); err != nil {
		return err
	}
	links := pn.Links()
	for i := 0; i < len(links); i += fileWindow {
		batch := make([]cid.Cid, 0, fileWindow)
		for _, l := range links[i:min(i+fileWindow, len(links))] {
			batch = append(batch, l.Cid)
		}
		datas, err := getMany(ctx, fw.g, batch)
		if err != nil {
			return err
		}
		for j, d := range datas {
			if err := fw.node(ctx, batch[j], d); err != nil {
				return err
			}
		}
	}
	return nil
}

func getMany(ctx context.Context, g blockGetter, cs []cid.Cid) ([][]byte, error) {
	if bg, ok := g.(batchGetter); ok && len(cs) > 1 {
		return bg.getBlocks(ctx, cs)
	}
	out := make([][]byte, len(cs))
	for i, c := range cs {
		d, err := g.getBlock(ctx, c)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// parallelGet reads and checks sibling blocks on every core: hashing is
// the cost of a local read, and siblings are independent.
func parallelGet(ctx context.Context, g blockGetter, cs []cid.Cid) ([][]byte, error) {
	out := make([][]byte, len(cs))
	errs := make([]error, len(cs))
	workers := min(runtime.GOMAXPROCS(0), len(cs))
	var next atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(cs) {
					return
				}
				if err := ctx.Err(); err != nil {
					errs[i] = err
					return
				}
				out[i], errs[i] = g.getBlock(ctx, cs[i])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// linksOf lists the children of a block; raw blocks have none.
func linksOf(c cid.Cid, data []byte) ([]cid.Cid, error) {
	switch c.Prefix().Codec {
	case cid.Raw:
		return nil, nil
	case cid.DagProtobuf:
		pn, err := merkledag.DecodeProtobuf(data)
		if err != nil {
			return nil, fmt.Errorf("block %s: decoding dag-pb: %w", c, err)
		}
		out := make([]cid.Cid, 0, len(pn.Links()))
		for _, l := range pn.Links() {
			out = append(out, l.Cid)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("block %s: codec 0x%x is not supported (only dag-pb and raw)", c, c.Prefix().Codec)
	}
}

// walkDAG visits every block under root once, depth first in link order (the
// order of `ipfs dag export`). Only the CIDs seen are remembered, not blocks.
func walkDAG(ctx context.Context, g blockGetter, root cid.Cid, visit func(c cid.Cid, data []byte) error) error {
	return walkDAGSkipping(ctx, g, root, nil, visit)
}

// walkDAGSkipping is walkDAG that neither reads nor descends into blocks for
// which skip says so.
func walkDAGSkipping(ctx context.Context, g blockGetter, root cid.Cid, skip func(cid.Cid) bool, visit func(c cid.Cid, data []byte) error) error {
	seen := map[string]struct{}{}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := seen[c.KeyString()]; ok {
			continue
		}
		seen[c.KeyString()] = struct{}{}
		if skip != nil && skip(c) {
			continue
		}
		data, err := g.getBlock(ctx, c)
		if err != nil {
			return err
		}
		if visit != nil {
			if err := visit(c, data); err != nil {
				return err
			}
		}
		links, err := linksOf(c, data)
		if err != nil {
			return err
		}
		for i := len(links) - 1; i >= 0; i-- {
			stack = append(stack, links[i])
		}
	}
	return nil
}

// checkDAG receives the blocks a re-chunking produces and compares each
// with the stored copy on a goroutine of its own, so the comparison overlaps
// the chunk hashing. It implements ipld.DAGService for the DAG builder.
type checkDAG struct {
	cmp     func(ctx context.Context, c cid.Cid, data []byte) error
	ctx     context.Context
	ch      chan checkItem
	done    chan struct{}
	blocks  int
	problem error // first problem
	extra   int   // problems after the first
}

// checkItem is a produced block, taken apart on the builder's goroutine:
// a ProtoNode caches its encoding lazily and must not be touched from two
// goroutines.
type checkItem struct {
	c    cid.Cid
	data []byte
}

func newCheckDAG(ctx context.Context, cmp func(context.Context, cid.Cid, []byte) error) *checkDAG {
	d := &checkDAG{cmp: cmp, ctx: ctx, ch: make(chan checkItem, 16), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for it := range d.ch {
			d.blocks++
			if err := d.cmp(ctx, it.c, it.data); err != nil {
				if d.problem == nil {
					d.problem = err
				} else {
					d.extra++
				}
			}
		}
	}()
	return d
}

func (d *checkDAG) finish() (int, error) {
	close(d.ch)
	<-d.done
	if d.problem != nil && d.extra > 0 {
		return d.blocks, fmt.Errorf("%w (and %d more blocks)", d.problem, d.extra)
	}
	return d.blocks, d.problem
}

func (d *checkDAG) Add(ctx context.Context, nd ipld.Node) error {
	it := checkItem{c: nd.Cid(), data: nd.RawData()}
	select {
	case d.ch <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *checkDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := d.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

func (d *checkDAG) Get(context.Context, cid.Cid) (ipld.Node, error) {
	return nil, ipld.ErrNotFound{}
}
func (d *checkDAG) GetMany(context.Context, []cid.Cid) <-chan *ipld.NodeOption {
	ch := make(chan *ipld.NodeOption)
	close(ch)
	return ch
}
func (d *checkDAG) Remove(context.Context, cid.Cid) error       { return nil }
func (d *checkDAG) RemoveMany(context.Context, []cid.Cid) error { return nil }

// FileCheck is what re-chunking a file against stored blocks found.
type FileCheck struct {
	// Root is the CID the file's bytes give with the import parameters.
	Root cid.Cid
	// Blocks is how many blocks the re-chunking produced.
	Blocks int
	// BlockErr is the first stored block that was missing or differed. It
	// only means something when Root is the CID the caller expected: a
	// different root produces different blocks.
	BlockErr error
}

// checkFile re-chunks r with p (one read: observe sees every chunk, for the
// caller's SHA-256) and compares every block it produces with the copy cmp
// looks up. When the root matches the expected CID, this proves every block
// of that DAG is stored intact without hashing the stored copies again.
//
// The re-chunking is anchoring's importer (importFile): a file of one chunk
// is encoded in place (boxo's importer copied it three times), a larger one
// goes through the pipeline, its blocks hashed on every core and compared
// by the workers as they come (cmp may run concurrently). A block that
// differs does not stop the re-chunking; the first one found is reported.
func checkFile(ctx context.Context, r io.Reader, p ImportParams, observe func([]byte), cmp func(context.Context, cid.Cid, []byte) error) (FileCheck, error) {
	d := newCheckDAG(ctx, cmp)
	var n atomic.Int64
	var (
		mu      sync.Mutex
		piped   int
		problem error
		extra   int
	)
	sink := func(ctx context.Context, b blocks.Block) error {
		err := cmp(ctx, b.Cid(), b.RawData())
		mu.Lock()
		defer mu.Unlock()
		piped++
		if err != nil {
			if problem == nil {
				problem = err
			} else {
				extra++
			}
		}
		return nil
	}
	root, err := importFile(ctx, r, p, dagCtx{d, ctx}, sink, observe, &n)
	added, berr := d.finish()
	if err != nil {
		return FileCheck{}, err
	}
	if problem != nil {
		if berr != nil {
			extra++
		}
		if extra > 0 {
			problem = fmt.Errorf("%w (and %d more blocks)", problem, extra)
		}
		berr = problem
	}
	return FileCheck{Root: root, Blocks: added + piped, BlockErr: berr}, nil
}

// dagCtx makes the builder's context.TODO() adds honour the caller's
// cancellation.
type dagCtx struct {
	*checkDAG
	ctx context.Context
}

func (d dagCtx) Add(_ context.Context, nd ipld.Node) error { return d.checkDAG.Add(d.ctx, nd) }

// compareWith returns a block comparison against a getter of raw (not yet
// hash-checked) stored bytes.
func compareWith(where string, raw func(context.Context, cid.Cid) ([]byte, error)) func(context.Context, cid.Cid, []byte) error {
	return func(ctx context.Context, c cid.Cid, want []byte) error {
		got, err := raw(ctx, c)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return &BlockError{CID: c, Where: where, Kind: ErrBlockCorrupt}
		}
		return nil
	}
}

// repoBlocks reads blocks from the node's own blockstore.
type repoBlocks struct{ n *Node }

func (r repoBlocks) raw(ctx context.Context, c cid.Cid) ([]byte, error) {
	b, err := r.n.ipfs.Blockstore.Get(ctx, c)
	if ipld.IsNotFound(err) {
		return nil, &BlockError{CID: c, Where: "the repo", Kind: ErrBlockMissing}
	}
	if err != nil {
		return nil, fmt.Errorf("reading block %s from the repo: %w", c, err)
	}
	return b.RawData(), nil
}

func (r repoBlocks) getBlock(ctx context.Context, c cid.Cid) ([]byte, error) {
	data, err := r.raw(ctx, c)
	if err != nil {
		return nil, err
	}
	if !checkHash(c, data) {
		return nil, &BlockError{CID: c, Where: "the repo", Kind: ErrBlockCorrupt}
	}
	return data, nil
}

func (r repoBlocks) getBlocks(ctx context.Context, cs []cid.Cid) ([][]byte, error) {
	return parallelGet(ctx, r, cs)
}

// CheckFile re-chunks r with p and checks that every block it produces is in
// the repo with the same bytes.
func (n *Node) CheckFile(ctx context.Context, r io.Reader, p ImportParams, observe func([]byte)) (FileCheck, error) {
	return checkFile(ctx, r, p, observe, compareWith("the repo", repoBlocks{n}.raw))
}

// ReadFile rebuilds the file at c from the repo, checking every block against
// its CID, and streams its bytes to w. It returns how many blocks it read and
// stops once the blocks read exceed maxBytes (see MaxDAGBytes).
func (n *Node) ReadFile(ctx context.Context, c cid.Cid, maxBytes int64, w io.Writer) (int, error) {
	return readFile(ctx, repoBlocks{n}, c, maxBytes, w)
}

// Has reports whether the repo holds block c.
func (n *Node) Has(ctx context.Context, c cid.Cid) (bool, error) {
	return n.ipfs.Blockstore.Has(ctx, c)
}

// Pin modes PinStates reports.
const (
	PinDirect    = "direct"
	PinRecursive = "recursive"
	PinIndirect  = "indirect"
)

// PinStates says how each target is pinned; targets that are not pinned are
// absent from the map. It reads the pin sets once and walks only directory
// nodes under recursive pins, stopping at targets: anchors hang off run-root
// directories, so this finds them without reading any file's chunks. A
// target not found that way (for example one that is also a chunk inside
// another pinned file) is looked up with kubo's full pin check.
func (n *Node) PinStates(ctx context.Context, targets []cid.Cid) (map[cid.Cid]string, error) {
	want := make(map[string]cid.Cid, len(targets))
	for _, c := range targets {
		want[c.KeyString()] = c
	}
	out := make(map[cid.Cid]string, len(targets))
	for sp := range n.ipfs.Pinning.DirectKeys(ctx, false) {
		if sp.Err != nil {
			return nil, fmt.Errorf("listing direct pins: %w", sp.Err)
		}
		if c, ok := want[sp.Pin.Key.KeyString()]; ok {
			out[c] = PinDirect
		}
	}
	var roots []cid.Cid
	for sp := range n.ipfs.Pinning.RecursiveKeys(ctx, false) {
		if sp.Err != nil {
			return nil, fmt.Errorf("listing recursive pins: %w", sp.Err)
		}
		if c, ok := want[sp.Pin.Key.KeyString()]; ok {
			out[c] = PinRecursive
			continue
		}
		roots = append(roots, sp.Pin.Key)
	}
	bs := repoBlocks{n}
	seen := map[string]struct{}{}
	for len(roots) > 0 && len(out) < len(want) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c := roots[len(roots)-1]
		roots = roots[:len(roots)-1]
		if _, ok := seen[c.KeyString()]; ok || c.Prefix().Codec != cid.DagProtobuf {
			continue
		}
		seen[c.KeyString()] = struct{}{}
		data, err := bs.raw(ctx, c)
		if err != nil {
			continue // a broken pin is kubo's `pin verify` business, not ours
		}
		pn, err := merkledag.DecodeProtobuf(data)
		if err != nil {
			continue
		}
		fsn, err := ft.FSNodeFromBytes(pn.Data())
		if err != nil || (fsn.Type() != ft.TDirectory && fsn.Type() != ft.THAMTShard) {
			continue
		}
		for _, l := range pn.Links() {
			if t, ok := want[l.Cid.KeyString()]; ok {
				if _, done := out[t]; !done {
					out[t] = PinIndirect
				}
				continue
			}
			roots = append(roots, l.Cid)
		}
	}
	var rest []cid.Cid
	for _, c := range want {
		if _, ok := out[c]; ok {
			continue
		}
		if has, _ := n.ipfs.Blockstore.Has(ctx, c); has {
			rest = append(rest, c)
		}
	}
	if len(rest) > 0 {
		ps, err := n.ipfs.Pinning.CheckIfPinned(ctx, rest...)
		if err != nil {
			return nil, fmt.Errorf("checking pins: %w", err)
		}
		for _, p := range ps {
			switch p.Mode {
			case pin.Indirect:
				out[want[p.Key.KeyString()]] = PinIndirect
			case pin.Direct:
				out[want[p.Key.KeyString()]] = PinDirect
			case pin.Recursive:
				out[want[p.Key.KeyString()]] = PinRecursive
			}
		}
	}
	return out, nil
}

// Connect dials peers given as full multiaddrs (with /p2p/<id>).
func (n *Node) Connect(ctx context.Context, addrs []string) error {
	if !n.online {
		return fmt.Errorf("connecting to peers: the node is offline")
	}
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return fmt.Errorf("peer %q: %w", a, err)
		}
		if err := n.api.Swarm().Connect(ctx, *ai); err != nil {
			return fmt.Errorf("connecting to %s: %w", a, err)
		}
	}
	return nil
}

// ConnectedPeers is how many peers the node is connected to now.
func (n *Node) ConnectedPeers() int {
	if !n.online || n.ipfs.PeerHost == nil {
		return 0
	}
	return len(n.ipfs.PeerHost.Network().Peers())
}

// Fetcher reads anchors from the node's connected peers over bitswap,
// never from the local blockstore, and stores nothing it fetches.
type Fetcher struct {
	n       *Node
	timeout time.Duration
}

// Fetcher returns a bitswap reader; each block request gives up after
// timeout (0 means 30 s).
func (n *Node) Fetcher(timeout time.Duration) (*Fetcher, error) {
	if !n.online {
		return nil, fmt.Errorf("fetching from peers needs an online node")
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &Fetcher{n: n, timeout: timeout}, nil
}

// Name says where the blocks come from.
func (f *Fetcher) Name() string { return "network" }

// ReadFile fetches the file at c from peers, checks every block against its
// CID and streams the bytes to w.
func (f *Fetcher) ReadFile(ctx context.Context, c cid.Cid, maxBytes int64, w io.Writer) (int, error) {
	return readFile(ctx, f, c, maxBytes, w)
}

func (f *Fetcher) getBlock(ctx context.Context, c cid.Cid) ([]byte, error) {
	out, err := f.getBlocks(ctx, []cid.Cid{c})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

func (f *Fetcher) getBlocks(ctx context.Context, cs []cid.Cid) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	idx := make(map[string][]int, len(cs))
	for i, c := range cs {
		idx[c.KeyString()] = append(idx[c.KeyString()], i)
	}
	ch, err := f.n.ipfs.Exchange.GetBlocks(ctx, cs)
	if err != nil {
		return nil, fmt.Errorf("requesting blocks from peers: %w", err)
	}
	out := make([][]byte, len(cs))
	got := 0
	var mu sync.Mutex
	for b := range ch {
		mu.Lock()
		for _, i := range idx[b.Cid().KeyString()] {
			if out[i] == nil {
				if !checkHash(cs[i], b.RawData()) {
					cancel()
					mu.Unlock()
					return nil, &BlockError{CID: cs[i], Where: "peers", Kind: ErrBlockCorrupt}
				}
				out[i] = b.RawData()
				got++
			}
		}
		mu.Unlock()
		if got == len(cs) {
			return out, nil
		}
	}
	for i, d := range out {
		if d == nil {
			cause := ctx.Err()
			if errors.Is(cause, context.DeadlineExceeded) {
				cause = fmt.Errorf("no connected peer sent it within %s", f.timeout)
			}
			return nil, &BlockError{CID: cs[i], Where: "peers", Kind: ErrBlockMissing, Cause: cause}
		}
	}
	return out, nil
}
