package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// This file is a pipelined UnixFS importer for files of more than one chunk.
// It builds exactly the DAG boxo's balanced importer builds (same blocks,
// same CIDs: import_test.go compares the two block by block), but:
//
//   - each chunk is read once, straight into the buffer its leaf block is
//     encoded in (boxo copies every chunk twice more through protobuf);
//   - leaves are hashed and stored by a pool of workers, one per core,
//     while the caller's observer (the file's SHA-256) runs on its own
//     goroutine and the reader keeps reading: on two cores the file hash
//     and the block hashes no longer run one after the other;
//   - buffers are recycled, so a 1 GiB file allocates a few MiB, not 1 GiB.
//
// boxo's importer has no hook for any of this (DagBuilderHelper hashes each
// leaf inline when its parent links it), hence the hand-written layout. It
// mirrors balanced.Layout/fillNodeRec; internal nodes are still built with
// boxo's ProtoNode and FSNode, so only leaf encoding is done by hand.

// blockSink stores (or checks) one block; it may be called concurrently.
type blockSink func(ctx context.Context, b blocks.Block) error

// leafBuf is one chunk's buffer with room for the leaf's protobuf framing
// on both sides, so the leaf block is encoded without copying the data.
type leafBuf struct {
	mem  []byte // leafHead + chunk + leafTail
	refs atomic.Int32
	pool chan *leafBuf
}

const (
	// leafHead is the most framing a dag-pb/UnixFS leaf needs before its
	// data: PBNode.Data tag + varint length (<= 4 bytes for blocks < 256
	// MiB), Data.Type (2), Data.Data tag + varint length (<= 4).
	leafHead = 1 + 4 + 2 + 1 + 4
	// leafTail is Data.filesize: tag + varint (<= 4 bytes).
	leafTail = 1 + 4
)

func (b *leafBuf) release() {
	if b.refs.Add(-1) == 0 {
		b.pool <- b
	}
}

// leafJob is one chunk on its way through the pipeline.
type leafJob struct {
	buf  *leafBuf
	n    int // data bytes
	done chan struct{}
	// set by the worker before done is closed
	cid  cid.Cid
	size uint64 // the link's Tsize: the whole block
	err  error
}

func (j *leafJob) data() []byte { return j.buf.mem[leafHead : leafHead+j.n] }

// encodeLeaf frames the job's data as the leaf block boxo would produce
// and returns the block bytes (a slice of the job's buffer).
func encodeLeaf(mem []byte, n int, raw bool) []byte {
	if raw {
		return mem[leafHead : leafHead+n]
	}
	// UnixFS Data{Type: File, Data: data, filesize: n} in field order, as
	// the protobuf marshaller writes it.
	var tail [leafTail]byte
	tail[0] = 0x18
	t := 1 + binary.PutUvarint(tail[1:], uint64(n))
	var dl [binary.MaxVarintLen64]byte
	dln := binary.PutUvarint(dl[:], uint64(n))
	unixfsLen := 2 + 1 + dln + n + t
	var ul [binary.MaxVarintLen64]byte
	uln := binary.PutUvarint(ul[:], uint64(unixfsLen))
	head := 1 + uln + 2 + 1 + dln
	start := leafHead - head
	h := mem[start:leafHead]
	h[0] = 0x0a // PBNode.Data
	copy(h[1:], ul[:uln])
	h[1+uln], h[2+uln] = 0x08, 0x02 // Data.Type = File
	h[3+uln] = 0x12                 // Data.Data
	copy(h[4+uln:], dl[:dln])
	copy(mem[leafHead+n:], tail[:t])
	return mem[start : leafHead+n+t]
}

// importer holds one file's pipeline.
type importer struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	p       ImportParams
	builder cid.Builder
	sink    blockSink
	observe func([]byte)
	count   *atomic.Int64
}

// pipelineDepth is how many chunks may be in flight: enough to keep every
// core busy, few enough to bound memory (16 × 256 KiB = 4 MiB).
const pipelineDepth = 16

// importFile chunks r with p into UnixFS blocks and returns the root CID.
// observe, when set, sees every chunk in file order on one goroutine; the
// slice is valid only during the call. count is advanced by the bytes of
// every block produced.
//
// A file of one chunk is one leaf block, encoded in the buffer it was read
// into and handed to small (the run's batched DAG) with one copy of its
// bytes: boxo's importer copied each small file three times (the chunk,
// the UnixFS protobuf, the dag-pb encoding), a gigabyte of garbage for the
// 16,500 files of the SSID tree. An empty file goes through boxo's
// importer (its block has no data field). Larger files go through the
// pipeline, whose blocks go to sink.
func importFile(ctx context.Context, r io.Reader, p ImportParams, small ipld.DAGService, sink blockSink, observe func([]byte), count *atomic.Int64) (cid.Cid, error) {
	chunk := int(p.ChunkSize)
	buf := getLeafMem(chunk)
	defer putLeafMem(chunk, buf)
	n, err := io.ReadFull(r, buf[leafHead:leafHead+chunk])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		if n == 0 {
			return buildFile(small, bytes.NewReader(nil), p, observe, count)
		}
		return singleLeaf(ctx, buf, n, p, small, observe, count)
	}
	if err != nil {
		return cid.Undef, err
	}
	ictx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	im := &importer{ctx: ictx, cancel: cancel, p: p, builder: p.cidBuilder(), sink: sink, observe: observe, count: count}
	return im.run(r, buf[leafHead:leafHead+n])
}

// singleLeaf stores a file of one chunk, read into mem at leafHead, as its
// one leaf: the block boxo's balanced layout makes the root of such a file.
func singleLeaf(ctx context.Context, mem []byte, n int, p ImportParams, small ipld.DAGService, observe func([]byte), count *atomic.Int64) (cid.Cid, error) {
	if observe != nil {
		observe(mem[leafHead : leafHead+n])
	}
	blk := encodeLeaf(mem, n, p.RawLeaves)
	builder := p.cidBuilder()
	if p.RawLeaves {
		builder = builder.WithCodec(cid.Raw)
	}
	c, err := builder.Sum(blk)
	if err != nil {
		return cid.Undef, err
	}
	if _, dry := small.(discardDAG); !dry {
		// The batch keeps the block until it is written; mem goes back to
		// the pool.
		b, err := blocks.NewBlockWithCid(bytes.Clone(blk), c)
		if err != nil {
			return cid.Undef, err
		}
		if err := small.Add(ctx, storedBlock{b}); err != nil {
			return cid.Undef, err
		}
	}
	count.Add(int64(len(blk)))
	return c, nil
}

// storedBlock hands a finished block to a DAG service, which stores a
// node's block as it is; it is never resolved.
type storedBlock struct{ blocks.Block }

var errStoredBlock = errors.New("a block being stored is not resolved")

func (storedBlock) Resolve([]string) (any, []string, error) { return nil, nil, errStoredBlock }
func (storedBlock) Tree(string, int) []string               { return nil }
func (storedBlock) ResolveLink([]string) (*ipld.Link, []string, error) {
	return nil, nil, errStoredBlock
}
func (s storedBlock) Copy() ipld.Node             { return s }
func (storedBlock) Links() []*ipld.Link           { return nil }
func (storedBlock) Stat() (*ipld.NodeStat, error) { return &ipld.NodeStat{}, nil }
func (s storedBlock) Size() (uint64, error)       { return uint64(len(s.RawData())), nil }

// Leaf buffers (leafHead + chunk + leafTail bytes) are pooled by exact
// size: go-buffer-pool rounds up to a power of two, so a 256 KiB chunk with
// its framing took a 512 KiB buffer.
var leafPools sync.Map // chunk size -> *sync.Pool of *[]byte

func getLeafMem(chunk int) []byte {
	if v, ok := leafPools.Load(chunk); ok {
		if b, ok := v.(*sync.Pool).Get().(*[]byte); ok {
			return *b
		}
	}
	return make([]byte, leafHead+chunk+leafTail)
}

func putLeafMem(chunk int, b []byte) {
	if len(b) != leafHead+chunk+leafTail {
		return
	}
	v, _ := leafPools.LoadOrStore(chunk, &sync.Pool{})
	v.(*sync.Pool).Put(&b)
}

func (im *importer) run(r io.Reader, first []byte) (cid.Cid, error) {
	// Buffers are made as the pipeline fills (a two-chunk file needs two,
	// not pipelineDepth) and go back to the shared pool at the end.
	free := make(chan *leafBuf, pipelineDepth)
	made := 0
	chunk := int(im.p.ChunkSize)
	defer func() {
		for {
			select {
			case b := <-free:
				putLeafMem(chunk, b.mem)
			default:
				return
			}
		}
	}()
	newBuf := func() *leafBuf {
		if made == pipelineDepth {
			return nil
		}
		made++
		return &leafBuf{mem: getLeafMem(chunk), pool: free}
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	work := make(chan *leafJob, pipelineDepth)
	observed := make(chan *leafJob, pipelineDepth)
	ordered := make(chan *leafJob, pipelineDepth)

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				im.leaf(j)
			}
		}()
	}
	obsDone := make(chan struct{})
	go func() {
		defer close(obsDone)
		for j := range observed {
			if im.observe != nil && im.ctx.Err() == nil {
				im.observe(j.data())
			}
			j.buf.release()
		}
	}()

	// The reader: this goroutine's helper, feeding all three consumers.
	readErr := make(chan error, 1)
	go func() {
		defer close(work)
		defer close(observed)
		defer close(ordered)
		readErr <- im.read(r, first, free, newBuf, work, observed, ordered)
	}()

	root, _, err := im.layout(ordered)
	if err != nil {
		im.cancel(err)
	}
	// Drain so the reader and workers can finish, then wait for them.
	for range ordered {
	}
	rerr := <-readErr
	wg.Wait()
	<-obsDone
	if err == nil && rerr != nil {
		err = rerr
	}
	if err == nil {
		if cause := context.Cause(im.ctx); cause != nil {
			err = cause
		}
	}
	if err != nil {
		return cid.Undef, err
	}
	return root, nil
}

// read fills buffers chunk by chunk and sends each to the workers, the
// observer and the layout, in file order.
func (im *importer) read(r io.Reader, first []byte, free chan *leafBuf, newBuf func() *leafBuf, work, observed, ordered chan<- *leafJob) error {
	chunk := int(im.p.ChunkSize)
	for i := 0; ; i++ {
		var b *leafBuf
		select {
		case b = <-free:
		default:
			if b = newBuf(); b == nil {
				select {
				case b = <-free:
				case <-im.ctx.Done():
					return context.Cause(im.ctx)
				}
			}
		}
		var n int
		var err error
		if i == 0 {
			n = copy(b.mem[leafHead:], first)
		} else {
			n, err = io.ReadFull(r, b.mem[leafHead:leafHead+chunk])
		}
		if n == 0 {
			b.pool <- b // refs are 0: it was never handed out
			if err == io.EOF {
				return nil
			}
			if err == nil {
				err = io.ErrNoProgress
			}
			return err
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			b.pool <- b
			return err
		}
		b.refs.Store(2) // the worker and the observer
		j := &leafJob{buf: b, n: n, done: make(chan struct{})}
		// On cancellation the buffer is simply dropped: the layout stops
		// waiting for leaves through the context, not through done.
		for _, ch := range []chan<- *leafJob{work, observed, ordered} {
			select {
			case ch <- j:
			case <-im.ctx.Done():
				return context.Cause(im.ctx)
			}
		}
		if err == io.ErrUnexpectedEOF {
			return nil
		}
	}
}

// leaf encodes, hashes and stores one leaf.
func (im *importer) leaf(j *leafJob) {
	defer close(j.done)
	defer j.buf.release()
	if err := im.ctx.Err(); err != nil {
		j.err = context.Cause(im.ctx)
		return
	}
	raw := im.p.RawLeaves
	blk := encodeLeaf(j.buf.mem, j.n, raw)
	var c cid.Cid
	var err error
	if raw {
		c, err = im.builder.WithCodec(cid.Raw).Sum(blk)
	} else {
		c, err = im.builder.Sum(blk)
	}
	if err != nil {
		j.err = err
		return
	}
	b, err := blocks.NewBlockWithCid(blk, c)
	if err != nil {
		j.err = err
		return
	}
	if err := im.sink(im.ctx, b); err != nil {
		j.err = err
		im.cancel(err)
		return
	}
	im.count.Add(int64(len(blk)))
	j.cid, j.size = c, uint64(len(blk))
}

// child is a finished node as its parent links it.
type child struct {
	cid      cid.Cid
	size     uint64 // Tsize: the whole sub-DAG's encoded bytes
	fileSize uint64 // the file bytes under it
}

// leafSource hands out finished leaves in file order, with the lookahead
// balanced.Layout's db.Done() needs.
type leafSource struct {
	ctx     context.Context
	ordered <-chan *leafJob
	next    *leafJob
	closed  bool
}

func (s *leafSource) done() bool {
	if s.next == nil && !s.closed {
		j, ok := <-s.ordered
		if ok {
			s.next = j
		} else {
			s.closed = true
		}
	}
	return s.next == nil
}

func (s *leafSource) take() (child, error) {
	if s.done() {
		return child{}, errors.New("no more leaves")
	}
	j := s.next
	s.next = nil
	select {
	case <-j.done:
	case <-s.ctx.Done():
		return child{}, context.Cause(s.ctx)
	}
	if j.err != nil {
		return child{}, j.err
	}
	return child{cid: j.cid, size: j.size, fileSize: uint64(j.n)}, nil
}

// layout is balanced.layoutData over the pipeline's leaves.
func (im *importer) layout(ordered <-chan *leafJob) (cid.Cid, uint64, error) {
	src := &leafSource{ctx: im.ctx, ordered: ordered}
	root, err := src.take()
	if err != nil {
		return cid.Undef, 0, err
	}
	for depth := 1; !src.done(); depth++ {
		root, err = im.fill(src, []child{root}, depth)
		if err != nil {
			return cid.Undef, 0, err
		}
	}
	return root.cid, root.fileSize, nil
}

// fill is balanced.fillNodeRec: it adds children (leaves at depth 1,
// filled sub-trees deeper) until the node has MaxLinks or the file ends,
// then stores the node.
func (im *importer) fill(src *leafSource, kids []child, depth int) (child, error) {
	for len(kids) < im.p.MaxLinks && !src.done() {
		var c child
		var err error
		if depth == 1 {
			c, err = src.take()
		} else {
			c, err = im.fill(src, nil, depth-1)
		}
		if err != nil {
			return child{}, err
		}
		kids = append(kids, c)
	}
	return im.internal(kids)
}

// internal stores one internal node exactly as FSNodeOverDag builds it.
func (im *importer) internal(kids []child) (child, error) {
	nd := new(merkledag.ProtoNode)
	if err := nd.SetCidBuilder(im.builder); err != nil {
		return child{}, err
	}
	fsn := ft.NewFSNode(ft.TFile)
	for _, k := range kids {
		if err := nd.AddRawLink("", &ipld.Link{Size: k.size, Cid: k.cid}); err != nil {
			return child{}, err
		}
		fsn.AddBlockSize(k.fileSize)
	}
	data, err := fsn.GetBytes()
	if err != nil {
		return child{}, err
	}
	nd.SetData(data)
	size, err := nd.Size()
	if err != nil {
		return child{}, err
	}
	if err := im.sink(im.ctx, nd); err != nil {
		return child{}, fmt.Errorf("storing node %s: %w", nd.Cid(), err)
	}
	im.count.Add(int64(len(nd.RawData())))
	return child{cid: nd.Cid(), size: size, fileSize: fsn.FileSize()}, nil
}
