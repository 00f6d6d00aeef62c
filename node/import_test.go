package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// recordDAG keeps every block boxo's importer writes.
type recordDAG struct {
	discardDAG
	mu     sync.Mutex
	blocks map[cid.Cid][]byte
}

func (d *recordDAG) Add(_ context.Context, nd ipld.Node) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.blocks[nd.Cid()] = slices.Clone(nd.RawData())
	return nil
}

func (d *recordDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		d.Add(ctx, nd)
	}
	return nil
}

func (d *recordDAG) sink(_ context.Context, b blocks.Block) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.blocks[b.Cid()] = slices.Clone(b.RawData())
	return nil
}

// oneByteReader returns at most one byte per Read, the worst case for
// io.ReadFull in the pipeline's reader.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

// TestImportMatchesBoxo: the pipelined importer produces exactly the blocks
// and root of boxo's balanced importer, for both CID profiles and for tiny
// chunk/fan-out settings that make trees three and four levels deep, at
// every size around a chunk and a fan-out boundary; observe sees the file's
// bytes in order; the bytes written are counted for the flusher.
func TestImportMatchesBoxo(t *testing.T) {
	rng := seededRand(t)
	def, err := ParamsFor(CIDProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := ParamsFor(CIDProfileUnixFSv12025)
	if err != nil {
		t.Fatal(err)
	}
	tiny := def
	tiny.ChunkSize, tiny.MaxLinks = 64, 3
	tinyRaw := v1
	tinyRaw.ChunkSize, tinyRaw.MaxLinks = 100, 4
	cases := []struct {
		name  string
		p     ImportParams
		sizes []int
	}{
		{"default", def, []int{0, 1, 262143, 262144, 262145, 2*262144 + 17, 174 * 262144, 174*262144 + 1, 3 << 20}},
		{"unixfs-v1-2025", v1, []int{0, 5, 1 << 20, 1<<20 + 1, 3<<20 + 333}},
		{"tiny", tiny, []int{1, 63, 64, 65, 64 * 3, 64*3 + 1, 64 * 9, 64*9 + 1, 64 * 27, 64*27 + 5, 64*81 + 64, 7777}},
		{"tiny-raw", tinyRaw, []int{1, 100, 101, 400, 401, 1600, 1601, 6401, 9999}},
	}
	for _, tc := range cases {
		for _, size := range tc.sizes {
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(rng.Uint64())
			}
			want := &recordDAG{blocks: map[cid.Cid][]byte{}}
			var n0 atomic.Int64
			wantRoot, err := buildFile(want, bytes.NewReader(data), tc.p, nil, &n0)
			if err != nil {
				t.Fatal(err)
			}
			for _, slow := range []bool{false, true} {
				got := &recordDAG{blocks: map[cid.Cid][]byte{}}
				var seen bytes.Buffer
				var n1 atomic.Int64
				var r io.Reader = bytes.NewReader(data)
				if slow {
					r = oneByteReader{r}
				}
				root, err := importFile(context.Background(), r, tc.p, got, got.sink, func(b []byte) { seen.Write(b) }, &n1)
				if err != nil {
					t.Fatalf("%s %d: %v", tc.name, size, err)
				}
				if root != wantRoot {
					t.Fatalf("%s %d bytes: root %s, boxo gives %s", tc.name, size, root, wantRoot)
				}
				if !bytes.Equal(seen.Bytes(), data) {
					t.Fatalf("%s %d bytes: observe saw %d bytes that differ from the file", tc.name, size, seen.Len())
				}
				if len(got.blocks) != len(want.blocks) {
					t.Fatalf("%s %d bytes: %d blocks, boxo writes %d", tc.name, size, len(got.blocks), len(want.blocks))
				}
				for c, b := range want.blocks {
					if !bytes.Equal(got.blocks[c], b) {
						t.Fatalf("%s %d bytes: block %s differs from boxo's", tc.name, size, c)
					}
				}
				// The flusher's count: at least the file's bytes.
				if n1.Load() < int64(size) {
					t.Fatalf("%s %d bytes: counted %d bytes written", tc.name, size, n1.Load())
				}
			}
		}
	}
}

// failingReader returns data, then an error.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// TestImportErrorsStopThePipeline: a read error, a store error and a
// cancelled context each end the import with that error and no goroutine
// left waiting (the test would hang otherwise).
func TestImportErrorsStopThePipeline(t *testing.T) {
	p, err := ParamsFor(CIDProfileDefault)
	if err != nil {
		t.Fatal(err)
	}
	p.ChunkSize = 1024
	readErr := errors.New("disk on fire")
	var n atomic.Int64
	_, err = importFile(context.Background(), &failingReader{data: make([]byte, 50*1024+3), err: readErr}, p, discardDAG{}, func(context.Context, blocks.Block) error { return nil }, nil, &n)
	if !errors.Is(err, readErr) {
		t.Fatalf("read error: got %v", err)
	}

	storeErr := errors.New("no space left on device")
	var puts atomic.Int32
	sink := func(context.Context, blocks.Block) error {
		if puts.Add(1) == 7 {
			return storeErr
		}
		return nil
	}
	_, err = importFile(context.Background(), bytes.NewReader(make([]byte, 100*1024)), p, discardDAG{}, sink, nil, &n)
	if !errors.Is(err, storeErr) {
		t.Fatalf("store error: got %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var seen atomic.Int64
	_, err = importFile(ctx, bytes.NewReader(make([]byte, 1<<20)), p, discardDAG{}, func(context.Context, blocks.Block) error { return nil }, func(b []byte) {
		if seen.Add(int64(len(b))) > 10*1024 {
			cancel()
		}
	}, &n)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v", err)
	}
}
