package anchor

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/node"
)

func TestRecordRemotePinsChainsLikeARun(t *testing.T) {
	f := vtBuild(t, t.TempDir())
	before, err := os.ReadFile(f.manifestPath())
	if err != nil {
		t.Fatal(err)
	}
	m0, err := ParseManifest(before)
	if err != nil {
		t.Fatal(err)
	}
	small := ""
	for _, r := range m0.Records {
		if r.FilePath == "data/small.txt" {
			small = r.IPFSCID
		}
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	record := func(ups []RemotePinUpdate) *Result {
		t.Helper()
		var res *Result
		vtWithNode(t, f, func(n *node.Node) {
			var err error
			res, err = RecordRemotePins(context.Background(), RewriteOptions{
				Root: f.root, Paths: f.paths, Provider: "embedded-ipfs:" + n.PeerID(), Now: func() time.Time { return at },
				OpenBatch: func(ctx context.Context) (Batch, error) { return n.NewBatch(ctx) },
				Signer:    n,
			}, ups)
			if err != nil {
				t.Fatal(err)
			}
		})
		return res
	}

	res := record([]RemotePinUpdate{{CID: small, Service: "cluster", RequestID: "r1", Status: "queued", UpdatedAt: at, Provider: "pinning-service:cluster"}})
	if !res.Rewritten || res.PreviousCID == "" {
		t.Fatalf("first update: %+v", res)
	}
	after, _ := os.ReadFile(f.manifestPath())
	m1, err := ParseManifest(after)
	if err != nil {
		t.Fatal(err)
	}
	var got []RemotePin
	for _, r := range m1.Records {
		if r.IPFSCID == small {
			got = r.RemotePins
		}
	}
	if len(got) != 1 || got[0] != (RemotePin{Service: "cluster", RequestID: "r1", Status: "queued", UpdatedAt: "2026-03-01T10:00:00Z"}) {
		t.Fatalf("remote_pins: %+v", got)
	}
	if len(m1.Records) != len(m0.Records) || m1.Processed != m0.Processed {
		t.Fatal("a remote pin update changed records or the watermark")
	}
	// Chained: previous_manifest_cid is the CID of the bytes it replaced.
	if c, _ := node.ComputeCID(bytes.NewReader(before), manifestParams, nil); c.String() != m1.PreviousCID {
		t.Fatalf("previous_manifest_cid %s, want %s", m1.PreviousCID, c)
	}
	// Not pinned yet: not a storage provider.
	if bytes.Contains(after, []byte("pinning-service:cluster")) {
		t.Fatal("listed as a storage provider before it holds a copy")
	}

	// The same state again writes nothing.
	if res := record([]RemotePinUpdate{{CID: small, Service: "cluster", RequestID: "r1", Status: "queued", UpdatedAt: at.Add(time.Hour)}}); res.Rewritten {
		t.Fatal("an unchanged state rewrote the manifest")
	}
	if again, _ := os.ReadFile(f.manifestPath()); !bytes.Equal(again, after) {
		t.Fatal("manifest bytes changed")
	}

	at = at.Add(time.Minute)
	record([]RemotePinUpdate{{CID: small, Service: "cluster", RequestID: "r1", Status: "pinned", UpdatedAt: at, Provider: "pinning-service:cluster"}})
	final, _ := os.ReadFile(f.manifestPath())
	var top struct {
		Statistics struct {
			Providers []string `json:"storage_providers"`
		} `json:"statistics"`
	}
	if err := json.Unmarshal(final, &top); err != nil {
		t.Fatal(err)
	}
	if len(top.Statistics.Providers) != 2 || top.Statistics.Providers[1] != "pinning-service:cluster" {
		t.Fatalf("storage_providers: %v", top.Statistics.Providers)
	}
	// The chain still verifies from the repo.
	rep := vtVerify(t, f, nil)
	if !rep.OK || len(rep.Chain.Manifests) != 5 {
		t.Fatalf("verify after remote pin updates: ok=%v chain=%+v", rep.OK, rep.Chain)
	}
}
