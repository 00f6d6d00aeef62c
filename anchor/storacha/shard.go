package storacha

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	carstorage "github.com/ipld/go-car/v2/storage"
	"github.com/multiformats/go-multicodec"
	"github.com/multiformats/go-multihash"
	"github.com/multiformats/go-varint"
)

// Blocks is where the DAGs are read from (met by *node.Node): WalkDAG
// visits every distinct block under root once, checked against its CID.
type Blocks interface {
	WalkDAG(ctx context.Context, root cid.Cid, visit func(c cid.Cid, data []byte) error) error
}

// builtShard is one CAR written to disk.
type builtShard struct {
	link cid.Cid
	size int64
	path string
}

// shardWriter streams one CARv1 to a temp file, hashing the bytes as they
// go so the CAR CID is known the moment the file is closed.
type shardWriter struct {
	f   *os.File
	bw  *bufio.Writer
	h   hash.Hash
	n   int64
	car carstorage.WritableCar
}

func (w *shardWriter) Write(p []byte) (int, error) {
	n, err := w.bw.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

func newShard(dir string, root cid.Cid) (*shardWriter, error) {
	f, err := os.CreateTemp(dir, "storacha-shard-*.car")
	if err != nil {
		return nil, fmt.Errorf("creating shard file: %w", err)
	}
	w := &shardWriter{f: f, bw: bufio.NewWriterSize(f, 1<<20), h: sha256.New()}
	// Duplicates and identity blocks are settled by the caller, so the
	// writer must write every block it is given: the size accounting
	// counts each one.
	w.car, err = carstorage.NewWritable(w, []cid.Cid{root}, carv2.WriteAsCarV1(true), carv2.AllowDuplicatePuts(true), carv2.StoreIdentityCIDs(true))
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("starting shard CAR: %w", err)
	}
	return w, nil
}

func (w *shardWriter) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

func (w *shardWriter) finish() (builtShard, error) {
	if err := w.car.Finalize(); err != nil {
		w.abort()
		return builtShard{}, fmt.Errorf("finishing shard CAR: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		w.abort()
		return builtShard{}, fmt.Errorf("writing shard CAR: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		w.abort()
		return builtShard{}, fmt.Errorf("syncing shard CAR: %w", err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return builtShard{}, fmt.Errorf("closing shard CAR: %w", err)
	}
	mh, err := multihash.Encode(w.h.Sum(nil), multihash.SHA2_256)
	if err != nil {
		return builtShard{}, err
	}
	return builtShard{link: cid.NewCidV1(uint64(multicodec.Car), mh), size: w.n, path: w.f.Name()}, nil
}

// buildShards cuts the DAGs under roots into CARv1 files of at most limit
// bytes, along block boundaries as w3-store.md asks, each block once in the
// whole batch. It returns the shards and, per root, the indexes of the
// shards holding at least one of its blocks (a block shared with an earlier
// root counts where it was first written). Each CAR's header names the
// first block it holds, which is a root whenever a DAG starts there.
// Deterministic: the same roots over the same blocks give the same CARs.
func buildShards(ctx context.Context, src Blocks, roots []cid.Cid, limit int64, dir string) ([]builtShard, [][]int, error) {
	var (
		shards []builtShard
		cur    *shardWriter
		placed = map[string]int{}
		per    = make([][]int, len(roots))
	)
	cleanup := func() {
		if cur != nil {
			cur.abort()
		}
		for _, s := range shards {
			os.Remove(s.path)
		}
	}
	for ri, root := range roots {
		in := map[int]bool{}
		err := src.WalkDAG(ctx, root, func(c cid.Cid, data []byte) error {
			key := c.KeyString()
			if i, ok := placed[key]; ok {
				in[i] = true
				return nil
			}
			section := int64(len(c.Bytes()) + len(data))
			section += int64(varint.UvarintSize(uint64(section)))
			if cur != nil && cur.n+section > limit {
				s, err := cur.finish()
				cur = nil
				if err != nil {
					return err
				}
				shards = append(shards, s)
			}
			if cur == nil {
				w, err := newShard(dir, c)
				if err != nil {
					return err
				}
				cur = w
				if cur.n+section > limit {
					return fmt.Errorf("block %s (%d bytes) does not fit in a shard of shard_size %d bytes; raise shard_size", c, len(data), limit)
				}
			}
			if err := cur.car.Put(ctx, key, data); err != nil {
				return fmt.Errorf("writing block %s to shard: %w", c, err)
			}
			placed[key] = len(shards)
			in[len(shards)] = true
			return nil
		})
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("reading DAG %s: %w", root, err)
		}
		for i := 0; i <= len(shards); i++ {
			if in[i] {
				per[ri] = append(per[ri], i)
			}
		}
	}
	if cur != nil {
		s, err := cur.finish()
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		shards = append(shards, s)
	}
	return shards, per, nil
}

// fileHolds tells whether path still holds size bytes (a shard left by an
// earlier run); the PUT target checks the bytes against the CAR CID.
func fileHolds(path string, size int64) bool {
	if path == "" {
		return false
	}
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() == size
}

var _ io.Writer = (*shardWriter)(nil)
