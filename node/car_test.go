package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	carstorage "github.com/ipld/go-car/v2/storage"
)

func ctRandom(seed byte, n int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{seed}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// ctRepo is an air-gapped repo holding two anchored files.
func ctRepo(t *testing.T) (repo string, file, other cid.Cid, fileData []byte) {
	t.Helper()
	repo = filepath.Join(t.TempDir(), "repo")
	if _, err := Init(repo, Config{Profile: ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), repo, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	b, err := n.NewBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ParamsFor(CIDProfileDefault)
	fileData = ctRandom(1, 1<<20+5) // 5 chunks under one root
	if file, err = b.AddFile(bytes.NewReader(fileData), p, nil); err != nil {
		t.Fatal(err)
	}
	if other, err = b.AddFile(strings.NewReader("another anchor"), p, nil); err != nil {
		t.Fatal(err)
	}
	b.Link("file", file)
	b.Link("other", other)
	if _, err := b.Commit("test"); err != nil {
		t.Fatal(err)
	}
	return repo, file, other, fileData
}

// ctSections lists a CAR's blocks in file order.
func ctSections(t *testing.T, path string) (roots []cid.Cid, cids []cid.Cid, datas [][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br, err := carv2.NewBlockReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			return br.Roots, cids, datas
		}
		if err != nil {
			t.Fatal(err)
		}
		cids = append(cids, b.Cid())
		datas = append(datas, b.RawData())
	}
}

// ctWriteCAR writes a CARv1 with the given roots and blocks, as is.
func ctWriteCAR(t *testing.T, path string, roots []cid.Cid, cids []cid.Cid, datas [][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := carstorage.NewWritable(f, roots, carv2.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cids {
		if err := w.Put(context.Background(), c.KeyString(), datas[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
}

func TestCARExportVerifyImport(t *testing.T) {
	repo, file, other, data := ctRepo(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.car")
	otherCAR := filepath.Join(dir, "other.car")
	func() {
		n, err := Open(context.Background(), repo, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		res, err := n.ExportCARFile(context.Background(), file, good)
		if err != nil {
			t.Fatal(err)
		}
		if res.Blocks != 6 {
			t.Fatalf("exported %d blocks, want 6 (root + 5 chunks)", res.Blocks)
		}
		if _, err := n.ExportCARFile(context.Background(), other, otherCAR); err != nil {
			t.Fatal(err)
		}
	}()
	roots, cids, datas := ctSections(t, good)
	if len(roots) != 1 || !roots[0].Equals(file) || !cids[0].Equals(file) {
		t.Fatalf("CAR roots %v, first block %v; want %v first", roots, cids[0], file)
	}
	_, ocids, odatas := ctSections(t, otherCAR)

	sum := sha256.Sum256(data)
	known := func(c cid.Cid) bool { return c.Equals(file) }

	// Each tampered CAR: what the offline reader and the importer say.
	type tampered struct {
		name       string
		make       func(path string)
		readErr    error  // ReadFile(file) from the CAR alone
		reportHas  string // CARReport problem text
		importFail bool
	}
	cases := []tampered{
		{
			name: "intact",
			make: func(p string) { ctWriteCAR(t, p, roots, cids, datas) },
		},
		{
			name: "flipped byte",
			make: func(p string) {
				b, _ := os.ReadFile(good)
				b[len(b)-7] ^= 0x20 // inside the last chunk's data
				os.WriteFile(p, b, 0o644)
			},
			readErr: ErrBlockCorrupt, reportHas: "does not match its CID", importFail: true,
		},
		{
			name: "missing block",
			make: func(p string) {
				ctWriteCAR(t, p, roots, append(append([]cid.Cid{}, cids[:3]...), cids[4:]...), append(append([][]byte{}, datas[:3]...), datas[4:]...))
			},
			readErr: ErrBlockMissing, reportHas: "not a complete DAG", importFail: true,
		},
		{
			name: "extra unrelated root",
			make: func(p string) {
				ctWriteCAR(t, p, []cid.Cid{file, other}, append(append([]cid.Cid{}, cids...), ocids...), append(append([][]byte{}, datas...), odatas...))
			},
			reportHas: "does not vouch for",
		},
		{
			name: "extra root whose DAG is absent",
			make: func(p string) {
				ctWriteCAR(t, p, []cid.Cid{file, other}, cids, datas)
			},
			reportHas: "not a complete DAG", importFail: true,
		},
		{
			name: "truncated end",
			make: func(p string) {
				b, _ := os.ReadFile(good)
				os.WriteFile(p, b[:len(b)-100], 0o644)
			},
			readErr: ErrBlockMissing, reportHas: "truncated", importFail: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.car")
			tc.make(p)
			set, err := OpenCARs([]string{p})
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			_, rerr := set.ReadFile(context.Background(), file, 0, h)
			switch {
			case tc.readErr == nil && rerr != nil:
				t.Fatalf("ReadFile: %v", rerr)
			case tc.readErr == nil && !bytes.Equal(h.Sum(nil), sum[:]):
				t.Fatalf("rebuilt bytes differ from the file")
			case tc.readErr != nil && !errors.Is(rerr, tc.readErr):
				t.Fatalf("ReadFile error %v, want %v", rerr, tc.readErr)
			}
			rep := set.Reports(context.Background(), known)[0]
			set.Close()
			msg := strings.Join(rep.Problems, "; ")
			if tc.reportHas == "" && !rep.OK {
				t.Fatalf("report: %s", msg)
			}
			if tc.reportHas != "" && (rep.OK || !strings.Contains(msg, tc.reportHas)) {
				t.Fatalf("report %q does not mention %q", msg, tc.reportHas)
			}

			// Import into a fresh repo: refused whole, or pinned.
			repo2 := filepath.Join(t.TempDir(), "repo")
			if _, err := Init(repo2, Config{}); err != nil {
				t.Fatal(err)
			}
			n, err := Open(context.Background(), repo2, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			_, ierr := n.ImportCAR(context.Background(), p, "test import")
			has, _ := n.Has(context.Background(), file)
			if tc.importFail {
				if !errors.Is(ierr, ErrBadCAR) {
					t.Fatalf("import error %v, want ErrBadCAR", ierr)
				}
				if has {
					t.Fatalf("a refused CAR left its root block in the repo")
				}
				return
			}
			if ierr != nil {
				t.Fatalf("import: %v", ierr)
			}
			st, err := n.PinStates(context.Background(), []cid.Cid{file})
			if err != nil || st[file] != PinRecursive {
				t.Fatalf("after import %s is %q (%v), want recursive", file, st[file], err)
			}
			h.Reset()
			if _, err := n.ReadFile(context.Background(), file, 0, h); err != nil || !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Fatalf("reading the imported file back: %v", err)
			}
		})
	}
}

// TestCheckFileFindsEveryBlock re-chunks a file against a repo holding
// its DAG, then against a repo that lost one chunk.
func TestCheckFileFindsEveryBlock(t *testing.T) {
	repo, file, _, data := ctRepo(t)
	p, _ := ParamsFor(CIDProfileDefault)
	n, err := Open(context.Background(), repo, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fc, err := n.CheckFile(context.Background(), bytes.NewReader(data), p, nil)
	if err != nil || fc.BlockErr != nil || !fc.Root.Equals(file) || fc.Blocks != 6 {
		t.Fatalf("intact: %+v %v", fc, err)
	}
	var dag []cid.Cid
	if err := walkDAG(context.Background(), repoBlocks{n}, file, func(c cid.Cid, _ []byte) error { dag = append(dag, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := n.ipfs.Blockstore.DeleteBlock(context.Background(), dag[3]); err != nil {
		t.Fatal(err)
	}
	fc, err = n.CheckFile(context.Background(), bytes.NewReader(data), p, nil)
	if err != nil || !fc.Root.Equals(file) || !errors.Is(fc.BlockErr, ErrBlockMissing) || !strings.Contains(fc.BlockErr.Error(), dag[3].String()) {
		t.Fatalf("after deleting %s: %+v %v", dag[3], fc, err)
	}
	if _, err := n.ReadFile(context.Background(), file, 0, io.Discard); !errors.Is(err, ErrBlockMissing) {
		t.Fatalf("ReadFile after deleting a chunk: %v", err)
	}
	n.Close()
}

// TestCARSetOpenFilesBounded: a set of more CARs than it may keep open (an
// export writes one per anchor; 20,000 exceed the usual limit of open
// files) reads and checks every one, with at most maxOpenCARs files open.
func TestCARSetOpenFilesBounded(t *testing.T) {
	ctx := context.Background()
	repo := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(repo, Config{Profile: ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(ctx, repo, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	b, err := n.NewBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ParamsFor(CIDProfileDefault)
	const files = 2*maxOpenCARs + 10
	var roots []cid.Cid
	var datas [][]byte
	for i := range files {
		// Every fourth file spans several chunks, so a root links blocks.
		size := 1000 + i
		if i%4 == 0 {
			size = 600 << 10
		}
		data := ctRandom(byte(i), size)
		c, err := b.AddFile(bytes.NewReader(data), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		b.Link(c.String(), c)
		roots, datas = append(roots, c), append(datas, data)
	}
	if _, err := b.Commit("test"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for _, c := range roots {
		path := filepath.Join(dir, c.String()+".car")
		if _, err := n.ExportCARFile(ctx, c, path); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	set, err := OpenCARs(paths)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	for i, c := range roots {
		var got bytes.Buffer
		if _, err := set.ReadFile(ctx, c, MaxDAGBytes(int64(len(datas[i]))), &got); err != nil {
			t.Fatalf("reading %s back: %v", c, err)
		}
		if !bytes.Equal(got.Bytes(), datas[i]) {
			t.Fatalf("%s: content differs", c)
		}
		if i%2 == 0 {
			fc, err := set.CheckFile(ctx, bytes.NewReader(datas[i]), p, nil)
			if err != nil || !fc.Root.Equals(c) || fc.BlockErr != nil {
				t.Fatalf("CheckFile %s: %+v %v", c, fc, err)
			}
		}
	}
	for _, r := range set.Reports(ctx, nil) {
		if !r.OK {
			t.Fatalf("%s: %v", r.Path, r.Problems)
		}
	}
	if set.fds.peak > maxOpenCARs || set.fds.peak == 0 {
		t.Fatalf("%d CAR files open at once for %d CARs; at most %d may be", set.fds.peak, files, maxOpenCARs)
	}
	t.Logf("%d CARs verified with at most %d open at once", files, set.fds.peak)
	if err := set.Close(); err != nil {
		t.Fatal(err)
	}
	if len(set.fds.open) != 0 {
		t.Fatalf("%d files still open after Close", len(set.fds.open))
	}
}

// TestExportCARFiles: the CARs written together are the bytes ExportCAR
// writes; a root the repo lacks is reported for that target alone, and no
// temp file is left behind.
func TestExportCARFiles(t *testing.T) {
	ctx := context.Background()
	repo, file, other, _ := ctRepo(t)
	n, err := Open(ctx, repo, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	p, _ := ParamsFor(CIDProfileDefault)
	missing, err := ComputeCID(strings.NewReader("never added"), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	targets := []ExportTarget{
		{file, filepath.Join(dir, file.String()+".car")},
		{missing, filepath.Join(dir, missing.String()+".car")},
		{other, filepath.Join(dir, other.String()+".car")},
	}
	results, errs, err := n.ExportCARFiles(ctx, targets)
	if err != nil {
		t.Fatal(err)
	}
	if errs[1] == nil || !errors.Is(errs[1], ErrBlockMissing) {
		t.Fatalf("missing root: %v", errs[1])
	}
	if _, err := os.Stat(targets[1].Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a CAR was written for the missing root: %v", err)
	}
	for _, i := range []int{0, 2} {
		if errs[i] != nil {
			t.Fatalf("%s: %v", targets[i].Root, errs[i])
		}
		var want bytes.Buffer
		wres, err := n.ExportCAR(ctx, targets[i].Root, &want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(targets[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) || results[i] != wres {
			t.Fatalf("%s: the CAR written (%d bytes, %+v) is not ExportCAR's (%d bytes, %+v)", targets[i].Root, len(got), results[i], want.Len(), wres)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("the directory holds %v; want the two CARs only", names)
	}
}
