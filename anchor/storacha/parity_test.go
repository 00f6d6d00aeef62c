package storacha

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
	"github.com/multiformats/go-multihash"

	"github.com/ssid/ssid-anchor/node"
)

var ipfsBuild struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// stockIPFS is the stock kubo CLI: SSID_IPFS_BIN, or built from this
// module graph once per test process.
func stockIPFS(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SSID_IPFS_BIN"); p != "" {
		return p
	}
	ipfsBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "storacha-ipfs-")
		if err != nil {
			ipfsBuild.err = err
			return
		}
		ipfsBuild.path = filepath.Join(dir, "ipfs")
		ipfsBuild.out, ipfsBuild.err = exec.Command("go", "build", "-o", ipfsBuild.path, "github.com/ipfs/kubo/cmd/ipfs").CombinedOutput()
	})
	if ipfsBuild.err != nil {
		t.Fatalf("building stock ipfs (or set SSID_IPFS_BIN): %v\n%s", ipfsBuild.err, ipfsBuild.out)
	}
	return ipfsBuild.path
}

func carCID(data []byte) cid.Cid {
	sum := sha256.Sum256(data)
	mh, _ := multihash.Encode(sum[:], multihash.SHA2_256)
	return cid.NewCidV1(uint64(multicodec.Car), mh)
}

// TestSingleShardIsDagExport: a DAG that fits one shard becomes exactly the
// CAR stock `ipfs dag export` writes (same header, same block order), so
// its CAR CID is the CID of that export.
func TestSingleShardIsDagExport(t *testing.T) {
	ctx := context.Background()
	repo := filepath.Join(t.TempDir(), "repo")
	if _, err := node.Init(repo, node.Config{Profile: node.ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(ctx, repo, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files := anchorFiles(t, n, sampleFiles(t)[:3])
	type built struct {
		root cid.Cid
		link cid.Cid
		data []byte
	}
	var got []built
	for _, f := range files {
		shards, _, err := buildShards(ctx, n, []cid.Cid{f.cid}, DefaultShardSize, t.TempDir())
		if err != nil {
			n.Close()
			t.Fatal(err)
		}
		if len(shards) != 1 {
			n.Close()
			t.Fatalf("%s: %d shards", f.name, len(shards))
		}
		data, err := os.ReadFile(shards[0].path)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, built{f.cid, shards[0].link, data})
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	bin := stockIPFS(t)
	for _, g := range got {
		cmd := exec.Command(bin, "dag", "export", g.root.String())
		cmd.Env = append(os.Environ(), "IPFS_PATH="+repo)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("ipfs dag export %s: %v\n%s", g.root, err, stderr.String())
		}
		if want := carCID(out.Bytes()); !want.Equals(g.link) || !bytes.Equal(out.Bytes(), g.data) {
			t.Errorf("%s: shard %s (%d bytes), ipfs dag export %s (%d bytes)", g.root, g.link, len(g.data), want, out.Len())
		}
	}
}
