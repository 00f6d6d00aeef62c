package node

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	ihelper "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	pin "github.com/ipfs/boxo/pinning/pinner"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/ipfs/kubo/config"
	mh "github.com/multiformats/go-multihash"
)

// CID profiles (SPEC 2.3).
const (
	// CIDProfileDefault is `ipfs add` with a default kubo v0.43.1 repo.
	CIDProfileDefault = "kubo-default"
	// CIDProfileUnixFSv12025 is kubo's IPIP-499 import profile.
	CIDProfileUnixFSv12025 = "unixfs-v1-2025"
)

// ImportParams are the UnixFS import settings that determine a file's CID.
type ImportParams struct {
	Profile    string
	CIDVersion int
	RawLeaves  bool
	ChunkSize  int64
	MaxLinks   int
}

// ParamsFor returns the import settings of a CID profile; "" means the
// default. They are read from kubo's own config after applying kubo's
// profile of the same name (none for the default), exactly as `ipfs add`
// derives them, so a kubo upgrade that changes a profile carries over.
func ParamsFor(profile string) (ImportParams, error) {
	switch profile {
	case "", CIDProfileDefault:
		return paramsFromKubo(CIDProfileDefault, "")
	case CIDProfileUnixFSv12025:
		return paramsFromKubo(CIDProfileUnixFSv12025, "unixfs-v1-2025")
	default:
		return ImportParams{}, fmt.Errorf("unknown CID profile %q: use %q or %q", profile, CIDProfileDefault, CIDProfileUnixFSv12025)
	}
}

// paramsFromKubo applies kubo's profile kuboProfile ("" = none: a default
// repo) to an empty kubo config and reads its Import section with kubo's
// defaults.
func paramsFromKubo(name, kuboProfile string) (ImportParams, error) {
	var c config.Config
	if kuboProfile != "" {
		kp, ok := config.Profiles[kuboProfile]
		if !ok {
			return ImportParams{}, fmt.Errorf("CID profile %q: kubo has no profile %q", name, kuboProfile)
		}
		if err := kp.Transform(&c); err != nil {
			return ImportParams{}, fmt.Errorf("CID profile %q: applying kubo's profile: %w", name, err)
		}
	}
	imp := c.Import
	chunker := imp.UnixFSChunker.WithDefault(config.DefaultUnixFSChunker)
	sizeStr, ok := strings.CutPrefix(chunker, "size-")
	size, err := strconv.ParseInt(sizeStr, 10, 64)
	if !ok || err != nil || size <= 0 {
		return ImportParams{}, fmt.Errorf("CID profile %q: kubo's chunker %q is not a fixed size this build supports", name, chunker)
	}
	if h := imp.HashFunction.WithDefault(config.DefaultHashFunction); h != "sha2-256" {
		return ImportParams{}, fmt.Errorf("CID profile %q: kubo's hash function %q is not supported (only sha2-256)", name, h)
	}
	if l := imp.UnixFSDAGLayout.WithDefault(config.DefaultUnixFSDAGLayout); l != config.DAGLayoutBalanced {
		return ImportParams{}, fmt.Errorf("CID profile %q: kubo's DAG layout %q is not supported (only balanced)", name, l)
	}
	cidVersion := int(imp.CidVersion.WithDefault(config.DefaultCidVersion))
	return ImportParams{
		Profile:    name,
		CIDVersion: cidVersion,
		// As in `ipfs add`: CIDv1 implies raw leaves unless set otherwise.
		RawLeaves: imp.UnixFSRawLeaves.WithDefault(cidVersion > 0 || config.DefaultUnixFSRawLeaves),
		ChunkSize: size,
		MaxLinks:  int(imp.UnixFSFileMaxLinks.WithDefault(config.DefaultUnixFSFileMaxLinks)),
	}, nil
}

func (p ImportParams) cidBuilder() cid.Builder {
	pre, _ := merkledag.PrefixForCidVersion(p.CIDVersion)
	pre.MhType = mh.SHA2_256
	pre.MhLength = -1
	return pre
}

// Batch groups the adds of one anchoring run. It holds the GC pin lock from
// the first block to the pin, so a concurrent GC can never collect a
// half-added file. Commit links every added file under one root, pins that
// root recursively and makes blocks and pins durable; each file is then
// pinned indirectly.
type Batch struct {
	n       *Node
	ctx     context.Context
	dag     *ipld.BufferedDAG
	unlock  func(context.Context)
	links   []*ipld.Link
	names   map[string]int
	flusher *flusher
	done    bool
}

// NewBatch starts a run of adds.
func (n *Node) NewBatch(ctx context.Context) (*Batch, error) {
	unlocker := n.ipfs.Blockstore.PinLock(ctx)
	b := &Batch{
		n:   n,
		ctx: ctx,
		// 2 MiB of small files' blocks buffered at most (split over the
		// commits in flight): a run over many small files held 8 MiB of
		// them, which flatfs writes no faster.
		dag:     ipld.NewBufferedDAG(ctx, n.ipfs.DAG, ipld.MaxSizeBatchOption(2<<20), ipld.MaxNodesBatchOption(256)),
		unlock:  unlocker.Unlock,
		names:   map[string]int{},
		flusher: newFlusher(n.blocksDir()),
	}
	return b, nil
}

// chunkTap shows every chunk to an observer and counts the bytes, so the
// flusher knows how much is dirty.
type chunkTap struct {
	chunker.Splitter
	observe func([]byte)
	count   *atomic.Int64
}

func (t chunkTap) NextBytes() ([]byte, error) {
	b, err := t.Splitter.NextBytes()
	if len(b) > 0 {
		t.count.Add(int64(len(b)))
		if t.observe != nil {
			t.observe(b)
		}
	}
	return b, err
}

// AddFile chunks r into UnixFS blocks with params p and returns the file's
// root CID. observe, when set, sees every chunk of the file in order, on one
// goroutine that may not be the caller's; the slice is valid only during the
// call. The anchor package hashes the whole file there so the file is read
// only once.
func (b *Batch) AddFile(r io.Reader, p ImportParams, observe func([]byte)) (cid.Cid, error) {
	if b.done {
		return cid.Undef, fmt.Errorf("batch already committed")
	}
	bs := b.n.ipfs.Blockstore
	// A file of several chunks whose blocks are already stored (the
	// previous manifest added again, the new manifest whose middle chunks
	// are the old one's, a bundle anchored again) is not written again:
	// kubo's write-through (the default) rewrites every block it is given
	// (temp file and rename), 25 MB of writes per commit over a 12.7 MB
	// manifest. One stat per 256 KiB block is the price.
	put := func(ctx context.Context, blk blocks.Block) error {
		if ok, err := bs.Has(ctx, blk.Cid()); err == nil && ok {
			return nil
		}
		return bs.Put(ctx, blk)
	}
	return importFile(b.ctx, r, p, b.dag, put, observe, &b.flusher.written)
}

// ComputeCID derives the CID that AddFile would give, storing nothing; it
// needs no repo (dry runs, air-gapped verification).
func ComputeCID(r io.Reader, p ImportParams, observe func([]byte)) (cid.Cid, error) {
	var n atomic.Int64
	discard := func(context.Context, blocks.Block) error { return nil }
	return importFile(context.Background(), r, p, discardDAG{}, discard, observe, &n)
}

func buildFile(ds ipld.DAGService, r io.Reader, p ImportParams, observe func([]byte), count *atomic.Int64) (cid.Cid, error) {
	spl := chunkTap{Splitter: chunker.NewSizeSplitter(r, p.ChunkSize), observe: observe, count: count}
	params := ihelper.DagBuilderParams{
		Dagserv:    ds,
		RawLeaves:  p.RawLeaves,
		Maxlinks:   p.MaxLinks,
		CidBuilder: p.cidBuilder(),
	}
	db, err := params.New(spl)
	if err != nil {
		return cid.Undef, err
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
}

// discardDAG accepts nodes and keeps none.
type discardDAG struct{}

func (discardDAG) Get(context.Context, cid.Cid) (ipld.Node, error) {
	return nil, ipld.ErrNotFound{}
}
func (discardDAG) GetMany(context.Context, []cid.Cid) <-chan *ipld.NodeOption {
	ch := make(chan *ipld.NodeOption)
	close(ch)
	return ch
}
func (discardDAG) Add(context.Context, ipld.Node) error        { return nil }
func (discardDAG) AddMany(context.Context, []ipld.Node) error  { return nil }
func (discardDAG) Remove(context.Context, cid.Cid) error       { return nil }
func (discardDAG) RemoveMany(context.Context, []cid.Cid) error { return nil }

// AddBytes adds a small document (for example the previous manifest) as a file.
func (b *Batch) AddBytes(data []byte, p ImportParams) (cid.Cid, error) {
	return b.AddFile(strings.NewReader(string(data)), p, nil)
}

// Link puts c under the run's root as name; the name is made unique and free
// of path separators.
func (b *Batch) Link(name string, c cid.Cid) {
	if strings.ContainsAny(name, "/\x00") {
		name = linkNameReplacer.Replace(name)
	}
	if name == "" || name == "." || name == ".." {
		name = "_"
	}
	if k := b.names[name]; k > 0 {
		b.names[name] = k + 1
		name = fmt.Sprintf("%s~%d", name, k)
	} else {
		b.names[name] = 1
	}
	b.links = append(b.links, &ipld.Link{Name: name, Cid: c})
}

var linkNameReplacer = strings.NewReplacer("/", "_", "\x00", "_")

// maxRootLinks keeps every root block well below the 1 MiB block limit.
const maxRootLinks = 1024

// Commit writes the run's root, pins it recursively under pinName, and
// returns once blocks and pins are on stable storage. With no links it only
// flushes.
func (b *Batch) Commit(pinName string) (cid.Cid, error) {
	if b.done {
		return cid.Undef, fmt.Errorf("batch already committed")
	}
	b.done = true
	defer b.release()
	if err := b.dag.Commit(); err != nil {
		return cid.Undef, fmt.Errorf("writing blocks: %w", err)
	}
	if len(b.links) == 0 {
		return cid.Undef, b.flusher.final()
	}
	root, err := b.writeRoot(b.links)
	if err != nil {
		return cid.Undef, fmt.Errorf("writing run root: %w", err)
	}
	// Blocks must be durable before a pin can point at them.
	if err := b.flusher.final(); err != nil {
		return cid.Undef, err
	}
	// Every block under root was written by this batch or is already stored,
	// so there is nothing to fetch: pin without walking the DAG.
	if err := b.n.ipfs.Pinning.PinWithMode(b.ctx, root, pin.Recursive, pinName); err != nil {
		return cid.Undef, fmt.Errorf("pinning run root %s: %w", root, err)
	}
	if err := b.n.ipfs.Pinning.Flush(b.ctx); err != nil {
		return cid.Undef, fmt.Errorf("flushing pins: %w", err)
	}
	if err := b.flusher.final(); err != nil {
		return cid.Undef, err
	}
	return root, nil
}

// writeRoot builds a UnixFS directory of links, splitting it into a tree of
// directories when a run adds more than maxRootLinks files.
func (b *Batch) writeRoot(links []*ipld.Link) (cid.Cid, error) {
	for len(links) > maxRootLinks {
		var next []*ipld.Link
		for i := 0; i < len(links); i += maxRootLinks {
			j := min(i+maxRootLinks, len(links))
			c, err := b.dirNode(links[i:j])
			if err != nil {
				return cid.Undef, err
			}
			next = append(next, &ipld.Link{Name: fmt.Sprintf("part-%05d", i/maxRootLinks), Cid: c})
		}
		links = next
	}
	return b.dirNode(links)
}

func (b *Batch) dirNode(links []*ipld.Link) (cid.Cid, error) {
	nd := ft.EmptyDirNode()
	for _, l := range links {
		nd.AddRawLink(l.Name, l)
	}
	if err := b.n.ipfs.DAG.Add(b.ctx, nd); err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
}

// Abort releases the batch without pinning; blocks already written stay as
// unpinned garbage for a later GC.
func (b *Batch) Abort() {
	if !b.done {
		b.done = true
		b.release()
	}
}

func (b *Batch) release() {
	b.flusher.stop()
	b.unlock(b.ctx)
}

// flusher pushes dirty block data to disk in the background while a large
// file is still being added, so the final sync before the pin only has the
// tail left to write.
type flusher struct {
	dir     string
	written atomic.Int64
	synced  atomic.Int64
	mu      sync.Mutex
	quit    chan struct{}
	wg      sync.WaitGroup
	err     error
}

const flushEvery = 64 << 20

func newFlusher(dir string) *flusher {
	f := &flusher{dir: dir, quit: make(chan struct{})}
	f.wg.Add(1)
	go f.loop()
	return f
}

func (f *flusher) loop() {
	defer f.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-f.quit:
			return
		case <-t.C:
			if f.written.Load()-f.synced.Load() >= flushEvery {
				f.sync()
			}
		}
	}
}

func (f *flusher) sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.written.Load()
	if err := syncFS(f.dir); err != nil {
		f.err = fmt.Errorf("syncing blocks to disk in %s: %w", f.dir, err)
		return f.err
	}
	f.synced.Store(w)
	return nil
}

func (f *flusher) final() error {
	if err := f.sync(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *flusher) stop() {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	f.wg.Wait()
}
