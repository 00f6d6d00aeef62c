package anchor

import (
	"bytes"
	"context"
	"encoding/base32"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
	coreiface "github.com/ipfs/kubo/core/coreiface"
	"github.com/ipfs/kubo/core/coreiface/options"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/ssid/ssid-anchor/node"
)

// vtFixture is a governance tree anchored in two runs on a real embedded
// node: run 1 with kubo-default, run 2 (after a new event, a changed log and
// a new file) with unixfs-v1-2025. The manifest chain is then
// run2 -> run1 -> the shipped sample manifest.
type vtFixture struct {
	dir   string // holds root/ and repo/
	root  tree.Root
	paths tree.Paths
	repo  string
}

func (f vtFixture) manifestPath() string { return filepath.Join(f.root.Dir(), f.paths.Manifest) }

func vtWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func vtRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func vtCopy(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("cp", "-a", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

func vtConfig() Config {
	c := DefaultConfig()
	c.Rules = []Rule{{Match: []string{"*"}, Globs: []string{"{events_log}", "{dashboard_csv}", "data/*"}}}
	c.GatewayBase = "http://127.0.0.1:8080/ipfs/"
	return c
}

func vtRun(t *testing.T, f vtFixture, profile string, at time.Time) *Result {
	t.Helper()
	params, err := node.ParamsFor(profile)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), f.repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	res, err := Run(context.Background(), RunOptions{
		Root: f.root, Paths: f.paths, Config: vtConfig(), Params: params,
		OpenBatch: func(ctx context.Context) (Batch, error) { return n.NewBatch(ctx) },
		Signer:    n,
		Now:       func() time.Time { return at },
	})
	if err != nil {
		t.Fatalf("anchoring run: %v", err)
	}
	if len(res.Failed) > 0 {
		t.Fatalf("anchoring run failed files: %+v", res.Failed)
	}
	return res
}

// vtBuild makes a fresh anchored fixture under dir.
func vtBuild(t *testing.T, dir string) vtFixture {
	t.Helper()
	rootDir := filepath.Join(dir, "root")
	paths := tree.DefaultPaths()
	vtWrite(t, filepath.Join(rootDir, paths.EventsLog), vtReadTestdata(t, "registry_events.log"))
	vtWrite(t, filepath.Join(rootDir, paths.Manifest), vtReadTestdata(t, "ipfs_anchor_manifest.json"))
	vtWrite(t, filepath.Join(rootDir, paths.DashboardCSV[0]), vtReadTestdata(t, "dashboard_data.csv"))
	vtWrite(t, filepath.Join(rootDir, "data/big.bin"), vtRandom(1, 700<<10)) // 3 chunks
	vtWrite(t, filepath.Join(rootDir, "data/small.txt"), []byte("a small governance note\n"))
	root, err := tree.OpenRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	f := vtFixture{dir: dir, root: root, paths: paths, repo: filepath.Join(dir, "repo")}
	if _, err := node.Init(f.repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	vtRun(t, f, node.CIDProfileDefault, time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC))

	// Run 2: a new event changes the log; a new 2.5 MiB file arrives.
	vtWrite(t, filepath.Join(rootDir, "data/new.bin"), vtRandom(2, 5<<19))
	if _, err := tree.AppendEvent(filepath.Join(rootDir, paths.EventsLog), tree.NewEvent{
		Timestamp: "2026-02-01T09:00:00Z", Event: "governance_review", Version: "v4.3.1",
		CommitHash: "abc123", Blueprint: "v4.3", Root24Lock: "active", ComplianceScore: "100/100", EmittedBy: "test",
	}); err != nil {
		t.Fatal(err)
	}
	vtRun(t, f, node.CIDProfileUnixFSv12025, time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC))
	return f
}

func vtReadTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "verify", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vtVerify verifies f's manifest against its repo.
func vtVerify(t *testing.T, f vtFixture, mod func(*VerifyOptions)) *VerifyReport {
	t.Helper()
	n, err := node.Open(context.Background(), f.repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	o := VerifyOptions{Root: f.root, ManifestPath: f.manifestPath(), Store: n, StoreName: "the repo", Pins: n}
	if mod != nil {
		mod(&o)
	}
	rep, err := Verify(context.Background(), o)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func vtRecord(t *testing.T, rep *VerifyReport, filePath string) RecordResult {
	t.Helper()
	var found *RecordResult
	for i := range rep.Records {
		if rep.Records[i].FilePath == filePath {
			found = &rep.Records[i] // the latest record of that path
		}
	}
	if found == nil {
		t.Fatalf("no record for %s", filePath)
	}
	return *found
}

// vtWantFailed asserts that check name failed on the record for filePath
// with a detail containing want, and that the whole report failed.
func vtWantFailed(t *testing.T, rep *VerifyReport, filePath, name, want string) {
	t.Helper()
	if rep.OK {
		t.Fatalf("report OK, want a failure")
	}
	r := vtRecord(t, rep, filePath)
	if r.OK {
		t.Fatalf("record %s passed: %+v", filePath, r.Checks)
	}
	for _, c := range r.Failed() {
		if c.Name == name && strings.Contains(c.Detail, want) {
			return
		}
	}
	t.Fatalf("record %s: no failed %q check mentioning %q; checks: %+v", filePath, name, want, r.Checks)
}

func vtEditManifest(t *testing.T, f vtFixture, edit func(*Manifest)) {
	t.Helper()
	m, _, err := LoadManifest(f.manifestPath())
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := m.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	vtWrite(t, f.manifestPath(), b)
}

func vtWithNode(t *testing.T, f vtFixture, fn func(n *node.Node)) {
	t.Helper()
	n, err := node.Open(context.Background(), f.repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	fn(n)
}

// vtBlockFile is where flatfs keeps block c.
func vtBlockFile(t *testing.T, repo string, c cid.Cid) string {
	t.Helper()
	name := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(c.Hash()) + ".data"
	var found string
	filepath.WalkDir(filepath.Join(repo, "blocks"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == name {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("block %s not found under %s/blocks", c, repo)
	}
	return found
}

// vtDAG lists the CIDs of a DAG in export order, read back from a CAR.
func vtDAG(t *testing.T, n *node.Node, root cid.Cid) []cid.Cid {
	t.Helper()
	var buf bytes.Buffer
	if _, err := n.ExportCAR(context.Background(), root, &buf); err != nil {
		t.Fatal(err)
	}
	br, err := carv2.NewBlockReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var out []cid.Cid
	for {
		b, err := br.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Cid())
	}
}

func vtCIDOf(t *testing.T, f vtFixture, filePath string) cid.Cid {
	t.Helper()
	m, _, err := LoadManifest(f.manifestPath())
	if err != nil {
		t.Fatal(err)
	}
	var s string
	for _, r := range m.Records {
		if r.FilePath == filePath {
			s = r.IPFSCID
		}
	}
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatalf("record %s: %v", filePath, err)
	}
	return c
}

func TestVerifyPristine(t *testing.T) {
	f := vtBuild(t, t.TempDir())
	rep := vtVerify(t, f, nil)
	if !rep.OK {
		t.Fatalf("pristine fixture failed: %+v %+v", rep.Records, rep.Chain)
	}
	// small.txt, big.bin, dashboard csv, log (run 1); log, new.bin (run 2).
	if len(rep.Records) != 6 || rep.Passed != 6 {
		t.Fatalf("records %d passed %d, want 6/6", len(rep.Records), rep.Passed)
	}
	if len(rep.Chain.Manifests) != 3 {
		t.Fatalf("chain has %d manifests, want 3 (run 2, run 1, the sample): %+v", len(rep.Chain.Manifests), rep.Chain)
	}
	if !rep.ManifestStored {
		t.Errorf("the manifest written by the last run is not in the repo")
	}
	// Every record is pinned through a run root; the superseded log record
	// is checked from the repo alone.
	for _, r := range rep.Records {
		var pinned, file string
		for _, c := range r.Checks {
			switch c.Name {
			case "pinned":
				pinned = c.Detail
			case "file":
				file = c.Status + " " + c.Detail
			}
		}
		if pinned != node.PinIndirect {
			t.Errorf("%s: pinned %q, want indirect", r.FilePath, pinned)
		}
		if r.FilePath == tree.DefaultPaths().EventsLog && r.Index < 3 && !strings.Contains(file, "record") {
			t.Errorf("superseded log record %d: file check %q, want it to point at the newer record", r.Index, file)
		}
	}
	if p := vtRecord(t, rep, "data/new.bin").CIDProfile; p != node.CIDProfileUnixFSv12025 {
		t.Errorf("new.bin profile %q", p)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	pristine := vtBuild(t, t.TempDir())
	cases := []struct {
		name   string
		tamper func(t *testing.T, f vtFixture)
		opts   func(*VerifyOptions)
		check  func(t *testing.T, rep *VerifyReport)
	}{
		{
			name: "changed byte in an anchored file",
			tamper: func(t *testing.T, f vtFixture) {
				p := filepath.Join(f.root.Dir(), "data/big.bin")
				b, _ := os.ReadFile(p)
				b[400<<10] ^= 0x01
				vtWrite(t, p, b)
			},
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantFailed(t, rep, "data/big.bin", "file", "changed after it was anchored")
			},
		},
		{
			name:   "deleted file",
			tamper: func(t *testing.T, f vtFixture) { os.Remove(filepath.Join(f.root.Dir(), "data/small.txt")) },
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantFailed(t, rep, "data/small.txt", "file", "is missing")
			},
		},
		{
			name:   "deleted file passes with --allow-missing",
			tamper: func(t *testing.T, f vtFixture) { os.Remove(filepath.Join(f.root.Dir(), "data/small.txt")) },
			opts:   func(o *VerifyOptions) { o.AllowMissing = true },
			check: func(t *testing.T, rep *VerifyReport) {
				if !rep.OK {
					t.Fatalf("with --allow-missing: %+v", vtRecord(t, rep, "data/small.txt"))
				}
				r := vtRecord(t, rep, "data/small.txt")
				if r.Checks[0].Status != StatusSkipped || r.Checks[2].Name != "blocks" || r.Checks[2].Status != StatusOK {
					t.Fatalf("want file skipped and blocks rebuilt from the repo: %+v", r.Checks)
				}
			},
		},
		{
			name: "block removed from the blockstore",
			tamper: func(t *testing.T, f vtFixture) {
				c := vtCIDOf(t, f, "data/big.bin")
				var leaf cid.Cid
				vtWithNode(t, f, func(n *node.Node) {
					dag := vtDAG(t, n, c)
					if len(dag) != 4 {
						t.Fatalf("big.bin has %d blocks, want 4", len(dag))
					}
					leaf = dag[2]
				})
				if err := os.Remove(vtBlockFile(t, f.repo, leaf)); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantFailed(t, rep, "data/big.bin", "blocks", "block missing in the repo")
			},
		},
		{
			name: "corrupted block in the blockstore",
			tamper: func(t *testing.T, f vtFixture) {
				c := vtCIDOf(t, f, "data/new.bin")
				var leaf cid.Cid
				vtWithNode(t, f, func(n *node.Node) { leaf = vtDAG(t, n, c)[1] })
				p := vtBlockFile(t, f.repo, leaf)
				b, _ := os.ReadFile(p)
				b[100] ^= 0xff
				vtWrite(t, p, b)
			},
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantFailed(t, rep, "data/new.bin", "blocks", "does not match its CID in the repo")
			},
		},
		{
			name: "anchor left unpinned",
			tamper: func(t *testing.T, f vtFixture) {
				vtWithNode(t, f, func(n *node.Node) {
					ctx := context.Background()
					ch := make(chan coreiface.Pin)
					go n.API().Pin().Ls(ctx, ch, options.Pin.Ls.Recursive())
					var roots []path.ImmutablePath
					for p := range ch {
						roots = append(roots, p.Path())
					}
					if len(roots) == 0 {
						t.Fatal("no recursive pins to remove")
					}
					for _, p := range roots {
						if err := n.API().Pin().Rm(ctx, p); err != nil {
							t.Fatal(err)
						}
					}
				})
			},
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantFailed(t, rep, "data/big.bin", "pinned", "is not pinned")
				// The blocks are still there: only the pin check fails.
				for _, c := range vtRecord(t, rep, "data/big.bin").Failed() {
					if c.Name != "pinned" {
						t.Errorf("unexpected failure %+v", c)
					}
				}
			},
		},
		{
			name: "record CID edited",
			tamper: func(t *testing.T, f vtFixture) {
				other := vtCIDOf(t, f, "data/small.txt").String()
				vtEditManifest(t, f, func(m *Manifest) {
					for i := range m.Records {
						if m.Records[i].FilePath == "data/big.bin" {
							m.Records[i].IPFSCID = other
						}
					}
				})
			},
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantFailed(t, rep, "data/big.bin", "cid", "the record says")
				vtWantFailed(t, rep, "data/big.bin", "blocks", "hashes to")
				if rep.Chain.OK {
					t.Errorf("editing a record that the previous manifest holds must break the chain")
				}
			},
		},
		{
			name: "record hash edited",
			tamper: func(t *testing.T, f vtFixture) {
				vtEditManifest(t, f, func(m *Manifest) {
					for i := range m.Records {
						if m.Records[i].FilePath == "data/new.bin" {
							m.Records[i].FileHash = strings.Repeat("ab", 32)
						}
					}
				})
			},
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantFailed(t, rep, "data/new.bin", "file", "the record says abab")
				vtWantFailed(t, rep, "data/new.bin", "blocks", "the record says abab")
			},
		},
		{
			name: "chain link to a manifest that is not stored",
			tamper: func(t *testing.T, f vtFixture) {
				absent, err := node.ComputeCID(strings.NewReader("never added"), manifestParams, nil)
				if err != nil {
					t.Fatal(err)
				}
				vtEditManifest(t, f, func(m *Manifest) { m.PreviousCID = absent.String() })
			},
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantChain(t, rep, "the chain is broken")
			},
		},
		{
			name: "chain link that is not a CID",
			tamper: func(t *testing.T, f vtFixture) {
				vtEditManifest(t, f, func(m *Manifest) { m.PreviousCID = "QmNotACid" })
			},
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantChain(t, rep, "is not a CID")
			},
		},
		{
			name: "chain link rewritten to a forged predecessor",
			tamper: func(t *testing.T, f vtFixture) {
				// The attacker rewrites the previous manifest (drops the
				// hash of one record), stores it, and relinks to it.
				m, _, err := LoadManifest(f.manifestPath())
				if err != nil {
					t.Fatal(err)
				}
				prevCID, _ := cid.Decode(m.PreviousCID)
				var buf bytes.Buffer
				vtWithNode(t, f, func(n *node.Node) {
					if _, err := n.ReadFile(context.Background(), prevCID, 0, &buf); err != nil {
						t.Fatal(err)
					}
				})
				prev, err := ParseManifest(buf.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				prev.Records[1].FileHash = strings.Repeat("00", 32)
				forged, _ := prev.MarshalUnsigned()
				var forgedCID cid.Cid
				vtWithNode(t, f, func(n *node.Node) {
					b, err := n.NewBatch(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if forgedCID, err = b.AddBytes(forged, manifestParams); err != nil {
						t.Fatal(err)
					}
					b.Link("forged.json", forgedCID)
					if _, err := b.Commit("forgery"); err != nil {
						t.Fatal(err)
					}
				})
				vtEditManifest(t, f, func(m *Manifest) { m.PreviousCID = forgedCID.String() })
			},
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantChain(t, rep, "history was rewritten")
			},
		},
		{
			name: "chain link pointing at a file that is not a manifest",
			tamper: func(t *testing.T, f vtFixture) {
				other := vtCIDOf(t, f, "data/small.txt").String()
				vtEditManifest(t, f, func(m *Manifest) { m.PreviousCID = other })
			},
			check: func(t *testing.T, rep *VerifyReport) {
				vtWantChain(t, rep, "is not a manifest")
			},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "case")
			vtCopy(t, pristine.dir, dir)
			root, err := tree.OpenRoot(filepath.Join(dir, "root"))
			if err != nil {
				t.Fatal(err)
			}
			f := vtFixture{dir: dir, root: root, paths: pristine.paths, repo: filepath.Join(dir, "repo")}
			tc.tamper(t, f)
			rep := vtVerify(t, f, tc.opts)
			tc.check(t, rep)
			_ = i
		})
	}
}

func vtWantChain(t *testing.T, rep *VerifyReport, want string) {
	t.Helper()
	if rep.OK || rep.Chain.OK {
		t.Fatalf("chain passed, want a failure mentioning %q: %+v", want, rep.Chain)
	}
	for _, p := range rep.Chain.Problems {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Fatalf("chain problems %q do not mention %q", rep.Chain.Problems, want)
}

// TestVerifyFromCARs exports every anchor and manifest, then verifies the
// tree with no repo at all, once intact and once with a flipped byte.
func TestVerifyFromCARs(t *testing.T) {
	f := vtBuild(t, t.TempDir())
	outDir := t.TempDir()
	var cars []string
	vtWithNode(t, f, func(n *node.Node) {
		plan, err := PlanExport(context.Background(), n, f.manifestPath())
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.ChainProblems) > 0 || !plan.ManifestStored || len(plan.Chain) != 2 {
			t.Fatalf("plan: %+v", plan)
		}
		all := []cid.Cid{plan.Manifest}
		all = append(all, plan.Chain...)
		for _, a := range plan.Anchors {
			all = append(all, a.CID)
		}
		for _, c := range all {
			p := filepath.Join(outDir, c.String()+".car")
			if _, err := n.ExportCARFile(context.Background(), c, p); err != nil {
				t.Fatal(err)
			}
			cars = append(cars, p)
		}
	})
	verifyCARs := func(t *testing.T, noTree bool) (*VerifyReport, []node.CARReport) {
		set, err := node.OpenCARs(cars)
		if err != nil {
			t.Fatal(err)
		}
		defer set.Close()
		rep, err := Verify(context.Background(), VerifyOptions{Root: f.root, NoTree: noTree, ManifestPath: f.manifestPath(), Store: set, StoreName: "the CAR files"})
		if err != nil {
			t.Fatal(err)
		}
		known := rep.CIDs()
		return rep, set.Reports(context.Background(), func(c cid.Cid) bool { return known[c.KeyString()] })
	}
	t.Run("intact, with the tree", func(t *testing.T) {
		rep, cr := verifyCARs(t, false)
		if !rep.OK {
			t.Fatalf("%+v %+v", rep.Records, rep.Chain)
		}
		for _, c := range cr {
			if !c.OK {
				t.Fatalf("car %s: %v", c.Path, c.Problems)
			}
		}
	})
	t.Run("intact, no tree", func(t *testing.T) {
		rep, _ := verifyCARs(t, true)
		if !rep.OK {
			t.Fatalf("%+v %+v", rep.Records, rep.Chain)
		}
	})
	t.Run("flipped byte", func(t *testing.T) {
		big := filepath.Join(outDir, vtCIDOf(t, f, "data/big.bin").String()+".car")
		b, _ := os.ReadFile(big)
		b[len(b)-1000] ^= 0x04
		vtWrite(t, big, b)
		rep, cr := verifyCARs(t, true)
		vtWantFailed(t, rep, "data/big.bin", "blocks", "does not match its CID")
		bad := false
		for _, c := range cr {
			if c.Path == big && !c.OK && strings.Contains(strings.Join(c.Problems, " "), "corrupt") {
				bad = true
			}
		}
		if !bad {
			t.Fatalf("car report does not name %s as corrupt: %+v", big, cr)
		}
	})
}
