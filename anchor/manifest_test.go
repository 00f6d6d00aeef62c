package anchor

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleManifest parses the real SSID manifest from testdata.
func sampleManifest(t *testing.T) (*Manifest, []byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/ipfs_anchor_manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m, raw
}

func TestManifestSampleRoundTrip(t *testing.T) {
	m, raw := sampleManifest(t)
	out, err := m.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, raw) {
		t.Errorf("an unchanged sample does not round-trip byte for byte:\n%s", out)
	}
}

func TestManifestKeepsUnknownKeysAndUpdatesStatistics(t *testing.T) {
	m, raw := sampleManifest(t)
	m.Records = append(m.Records,
		Record{FilePath: "a/x.log", FileName: "x.log", FileHash: "11", IPFSCID: "QmA", AnchoredAt: "2026-01-02T00:00:00Z",
			Extra: []KV{{"future_key", json.RawMessage(`{"k":1}`)}}},
		Record{FilePath: "a/x.log", FileName: "x.log", FileHash: "22", IPFSCID: "QmB", AnchoredAt: "2026-01-01T00:00:00Z"},
		Record{FilePath: "b/y.zip", FileName: "y.zip", FileHash: "33", IPFSCID: "QmC", AnchoredAt: "2026-01-03T00:00:00Z"},
	)
	m.PreviousCID = "QmPrev"
	if err := m.Touch(time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC), "embedded-ipfs:peer"); err != nil {
		t.Fatal(err)
	}
	out, err := m.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	var before, after map[string]any
	json.Unmarshal(raw, &before)
	if err := json.Unmarshal(out, &after); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	for _, k := range []string{"compliance", "verification", "anchor_schema", "usage", "documentation", "external_resources", "description", "created_at", "manifest_version", "blueprint_version"} {
		if !reflect.DeepEqual(before[k], after[k]) {
			t.Errorf("key %q changed: %v -> %v", k, before[k], after[k])
		}
	}
	st := after["statistics"].(map[string]any)
	want := map[string]any{"total_anchors": 3.0, "total_files_anchored": 2.0, "first_anchor_date": "2026-01-01T00:00:00Z",
		"last_anchor_date": "2026-01-03T00:00:00Z", "storage_providers": []any{"embedded-ipfs:peer"}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("statistics = %v, want %v", st, want)
	}
	if after["last_updated"] != "2026-01-04T00:00:00Z" || after["previous_manifest_cid"] != "QmPrev" {
		t.Errorf("last_updated %v previous %v", after["last_updated"], after["previous_manifest_cid"])
	}
	// Re-parse: the record's unknown key and field order survive.
	m2, err := ParseManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Records) != 3 || len(m2.Records[0].Extra) != 1 || m2.Records[0].Extra[0].Key != "future_key" {
		t.Fatalf("records after re-parse: %+v", m2.Records)
	}
	rb, _ := json.Marshal(m2.Records[1])
	wantPrefix := `{"file_path":"a/x.log","file_name":"x.log","file_hash":"22","ipfs_cid":"QmB","ipfs_gateway_url":"","anchored_at":`
	if !bytes.HasPrefix(rb, []byte(wantPrefix)) {
		t.Errorf("record key order: %s", rb)
	}
	if !m2.Has("a/x.log", "22") || m2.Has("a/x.log", "33") {
		t.Error("Has does not identify records by (path, hash)")
	}
}

func FuzzParseManifest(f *testing.F) {
	raw, _ := os.ReadFile("testdata/ipfs_anchor_manifest.json")
	f.Add(raw)
	f.Add([]byte(`{"anchors":[{"file_path":"a","x":[1,{"y":null}]}],"previous_manifest_cid":"Qm"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParseAgrees(t, "fuzz", data)
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		out, err := m.MarshalUnsigned()
		if err != nil {
			t.Fatalf("parsed but cannot marshal: %v", err)
		}
		m2, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("own output does not parse: %v\n%s", err, out)
		}
		out2, _ := m2.MarshalUnsigned()
		if !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
	})
}

// A manifest larger than maxManifestSize is refused by its size, before it
// is read (the file is sparse: nothing is written or read).
func TestLoadManifestRefusesHugeFile(t *testing.T) {
	p := t.TempDir() + "/manifest.json"
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxManifestSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, _, err = LoadManifest(p)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("LoadManifest of a %d-byte file: err = %v, want a too-large error", maxManifestSize+1, err)
	}
}
