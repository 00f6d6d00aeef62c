package anchor

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gowebpki/jcs"
	"github.com/ssid/ssid-anchor/anchor/tree"
)

func unsafeData(s string) uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(s))) }

// checkParseAgrees compares ParseManifest (the fast decoder, encoding/json
// for anything unusual) with encoding/json alone on one document: the
// same error, or the same manifest and the same rendered bytes.
func checkParseAgrees(t *testing.T, name string, b []byte) {
	t.Helper()
	want, werr := parseManifestSlow(b)
	got, gerr := ParseManifest(b)
	// The watermark-only scan of a run with nothing new: never on what is
	// not JSON, and the same watermark as the full parse.
	if w, err := scanProcessed(b); err == nil {
		if !json.Valid(b) {
			t.Fatalf("%s: scanProcessed accepts what is not JSON", name)
		}
		if werr == nil && w != want.Processed {
			t.Fatalf("%s: scanProcessed %+v, ParseManifest %+v", name, w, want.Processed)
		}
	}
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: encoding/json: %v, ParseManifest: %v", name, werr, gerr)
	}
	if werr != nil {
		if werr.Error() != gerr.Error() {
			t.Fatalf("%s: errors differ: %v / %v", name, werr, gerr)
		}
		return
	}
	for i := range want.keys {
		if want.keys[i].Key == keyAnchors {
			want.keys[i].Value = nil
			break
		}
	}
	if !reflect.DeepEqual(got.Records, want.Records) {
		t.Fatalf("%s: records differ:\n%+v\n%+v", name, got.Records, want.Records)
	}
	if !reflect.DeepEqual(got.keys, want.keys) || got.PreviousCID != want.PreviousCID || got.Processed != want.Processed {
		t.Fatalf("%s: top level differs:\n%+v %q %+v\n%+v %q %+v", name, got.keys, got.PreviousCID, got.Processed, want.keys, want.PreviousCID, want.Processed)
	}
	a, aerr := got.MarshalUnsigned()
	w, werr2 := want.MarshalUnsigned()
	if (aerr == nil) != (werr2 == nil) || !bytes.Equal(a, w) {
		t.Fatalf("%s: rendered differently (%v / %v):\n%s\n%s", name, aerr, werr2, a, w)
	}
}

// odd are strings that take every escaping path.
var odd = []string{`q"uote`, `back\slash`, "tab\t", "\x01\x7f", "<a&b>", "line\u2028sep", "ünïcødé", "emoji 🙂", "\ufb01", ""}

func randomRecord(rnd *rand.Rand, i int) Record {
	r := Record{
		FilePath: "tree/d" + strconv.Itoa(i%7) + "/f" + strconv.Itoa(i) + ".yaml", FileHash: strconv.FormatUint(rnd.Uint64(), 16),
		IPFSCID: "QmX" + strconv.Itoa(i), AnchoredAt: "2026-12-02T08:00:0" + strconv.Itoa(i%3) + "Z", EventType: "bench",
		EventVersion: "v1", EventTimestamp: "2026-12-02T07:00:00Z", BlueprintVersion: "v4.3", FileSize: rnd.Int64N(1 << 40),
		EventProofAnchor: "ab", Pinned: rnd.IntN(2) == 0, CIDProfile: "kubo-default",
	}
	r.FileName = r.FilePath[strings.LastIndexByte(r.FilePath, '/')+1:]
	r.IPFSGatewayURL = "https://ipfs.io/ipfs/" + r.IPFSCID
	switch rnd.IntN(7) {
	case 0:
		r.FileName = odd[rnd.IntN(len(odd))]
	case 1:
		r.RemotePins = []RemotePin{{Service: "s", RequestID: odd[rnd.IntN(len(odd))], Status: "pinned", UpdatedAt: "2026-12-02T09:00:00Z"}}
	case 2:
		r.Extra = []KV{{"zz_note", json.RawMessage(`{"b":1.50,"a":[1e3,"\u00e9"]}`)}, {"nothing", json.RawMessage(`null`)}}
	case 3:
		r.FileSize = 1<<53 + rnd.Int64N(1000)
	case 4:
		r.EventVersion = odd[rnd.IntN(len(odd))]
	}
	return r
}

// TestDecodeManifestAgrees feeds the fast decoder ordinary manifests (it
// must take them itself) and unusual ones (it must leave them to
// encoding/json, which then decides), and compares both readers on each.
func TestDecodeManifestAgrees(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 7))
	sample, raw := sampleManifest(t)
	checkParseAgrees(t, "sample", raw)
	if _, err := decodeManifest(raw); err != nil {
		t.Fatalf("the fast decoder refuses the real sample: %v", err)
	}
	for i := range 200 {
		sample.Records = append(sample.Records, randomRecord(rnd, i))
	}
	sample.PreviousCID = "QmPrev"
	sample.Processed = Watermark{Count: 3, Last: "ab", Offset: 10, Lines: 2, TailLen: 4, TailSHA256: "cd"}
	big, err := sample.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	checkParseAgrees(t, "generated", big)
	if _, err := decodeManifest(big); err != nil {
		t.Fatalf("the fast decoder refuses a manifest this tool wrote: %v", err)
	}
	rec := `{"file_path":"a/b.md","file_name":"b.md","file_hash":"h","ipfs_cid":"Qm","file_size":3,"pinned":true}`
	docs := map[string]string{
		"escaped key":                `{"anch\u006frs":[` + rec + `],"x":1}`,
		"escaped value":              `{"anchors":[{"file_path":"a\/b\u00e9.md","file_name":"b\u00e9.md"}]}`,
		"null fields":                `{"anchors":[{"file_path":null,"remote_pins":null,"pinned":null,"file_size":null,"x":null}]}`,
		"null anchors":               `{"anchors":null,"previous_manifest_cid":null,"processed_events":null}`,
		"no anchors":                 `{"a":1}`,
		"empty anchors":              `{"anchors":[]}`,
		"whitespace":                 " {\n \"anchors\" : [ \n" + rec + " , " + rec + "\n] , \"s\" : { \"k\" : [ 1 , 2 ] } }\n",
		"duplicate top-level key":    `{"anchors":[` + rec + `],"anchors":[]}`,
		"duplicate record key":       `{"anchors":[{"file_path":"a","file_path":"b"}]}`,
		"duplicate extra key":        `{"anchors":[{"x":1,"x":2}]}`,
		"invalid utf-8":              "{\"anchors\":[{\"file_path\":\"a\xff\"}]}",
		"invalid utf-8 elsewhere":    "{\"note\":\"\xfe\",\"anchors\":[]}",
		"size as string":             `{"anchors":[{"file_size":"3"}]}`,
		"size as float":              `{"anchors":[{"file_size":3.5}]}`,
		"size 1e3":                   `{"anchors":[{"file_size":1e3}]}`,
		"size -0":                    `{"anchors":[{"file_size":-0}]}`,
		"size too big":               `{"anchors":[{"file_size":99999999999999999999}]}`,
		"pinned as number":           `{"anchors":[{"pinned":1}]}`,
		"path as number":             `{"anchors":[{"file_path":7}]}`,
		"remote pins wrong":          `{"anchors":[{"remote_pins":{"a":1}}]}`,
		"remote pins ok":             `{"anchors":[{"remote_pins":[{"service":"s","request_id":"r","status":"queued","updated_at":"t","more":1}]}]}`,
		"record not an object":       `{"anchors":[1]}`,
		"null record":                `{"anchors":[null]}`,
		"anchors an object":          `{"anchors":{}}`,
		"trailing data":              `{"anchors":[]} x`,
		"two objects":                `{"anchors":[]}{}`,
		"not an object":              `[1,2]`,
		"truncated":                  `{"anchors":[` + rec,
		"previous wrong type":        `{"previous_manifest_cid":1}`,
		"processed wrong type":       `{"processed_events":"x"}`,
		"processed case-insensitive": `{"processed_events":{"COUNT":2,"last_proof_anchor":"x"}}`,
		"name not shared":            `{"anchors":[{"file_path":"a/b.md","file_name":"c.md"}]}`,
		"empty":                      ``,
	}
	for name, doc := range docs {
		checkParseAgrees(t, name, []byte(doc))
	}
	// Every byte position of a manifest this tool wrote, cut or flipped.
	small := big[:min(len(big), 4000)]
	for i := 0; i < len(small); i += 1 + rnd.IntN(7) {
		checkParseAgrees(t, "cut at "+strconv.Itoa(i), small[:i])
		flipped := bytes.Clone(small)
		const bytesToTry = "\"{}[],:0an\\ \x00\xff"
		flipped[i] = bytesToTry[rnd.IntN(len(bytesToTry))]
		checkParseAgrees(t, "flipped at "+strconv.Itoa(i), flipped)
	}
}

// TestDecodeManifestSharesStrings: the strings records share are kept once
// and file_name points into file_path.
func TestDecodeManifestSharesStrings(t *testing.T) {
	m := NewManifest("v1", time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC))
	for i := range 3 {
		m.Records = append(m.Records, randomRecord(rand.New(rand.NewPCG(1, uint64(i))), i))
		m.Records[i].Extra, m.Records[i].RemotePins = nil, nil
		m.Records[i].FileName = m.Records[i].FilePath[strings.LastIndexByte(m.Records[i].FilePath, '/')+1:]
	}
	b, err := m.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b string) bool { return a != "" && unsafeData(a) == unsafeData(b) }
	if !same(got.Records[0].EventProofAnchor, got.Records[2].EventProofAnchor) || !same(got.Records[0].CIDProfile, got.Records[1].CIDProfile) {
		t.Error("records keep separate copies of the strings they share")
	}
	r := got.Records[1]
	if unsafeData(r.FileName) != unsafeData(r.FilePath)+uintptr(len(r.FilePath)-len(r.FileName)) {
		t.Error("file_name is a copy, not the end of file_path")
	}
}

// TestRenderMatchesIndent: the manifest rendered value by value is the
// bytes json.Indent gives for the whole compact object, the form every
// manifest so far was written in.
func TestRenderMatchesIndent(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 9))
	m, _ := sampleManifest(t)
	for _, n := range []int{0, 1, 300} {
		m.Records = m.Records[:0]
		for i := range n {
			m.Records = append(m.Records, randomRecord(rnd, i))
		}
		m.keys = append(m.keys, KV{"ünknown", json.RawMessage(`{ "y" : [ 2 , { } , [ ] ] ,"x":"\u00e9"}`)}, KV{"n", json.RawMessage(`1.0`)})
		if err := m.prepare(); err != nil {
			t.Fatal(err)
		}
		got, err := m.render()
		if err != nil {
			t.Fatal(err)
		}
		kvs, err := m.keysEncoded()
		if err != nil {
			t.Fatal(err)
		}
		obj, _ := marshalObject(kvs)
		var want bytes.Buffer
		if err := json.Indent(&want, obj, "", "  "); err != nil {
			t.Fatal(err)
		}
		want.WriteByte('\n')
		if !bytes.Equal(got, want.Bytes()) {
			i := 0
			for i < len(got) && i < want.Len() && got[i] == want.Bytes()[i] {
				i++
			}
			t.Fatalf("%d records: rendered bytes differ at %d:\n got …%q\nwant …%q", n, i, got[max(0, i-60):min(len(got), i+60)], want.Bytes()[max(0, i-60):min(want.Len(), i+60)])
		}
	}
	empty := &Manifest{}
	if got, _ := empty.render(); string(got) != "{}\n" {
		t.Errorf("no keys: %q", got)
	}
}

// TestSummarizeManifestCounts: the record-by-record count equals counting
// the parsed records, on the fast path and on encoding/json's.
func TestSummarizeManifestCounts(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 11))
	m, _ := sampleManifest(t)
	for i := range 300 {
		r := randomRecord(rnd, i%120) // paths repeat: several versions of a file
		r.Pinned = i%3 != 0
		m.Records = append(m.Records, r)
	}
	m.PreviousCID = "QmPrev"
	ordinary, err := m.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	unusual := bytes.Replace(ordinary, []byte(`"manifest_version"`), []byte(`"x": 1, "x": 2, "manifest_version"`), 1)
	for name, b := range map[string][]byte{"ordinary": ordinary, "duplicate key": unusual} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "m.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		root, err := tree.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SummarizeManifestIn(root, "m.json")
		root.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		full, err := ParseManifest(b)
		if err != nil {
			t.Fatal(err)
		}
		want := Summary{RemotePins: map[string]int{}}
		files := map[string]bool{}
		for _, r := range full.Records {
			want.Records++
			files[r.FilePath] = true
			if r.Pinned {
				want.Pinned++
			}
			for _, p := range r.RemotePins {
				want.RemotePins[p.Status]++
			}
		}
		want.Files = len(files)
		if got.Records != want.Records || got.Files != want.Files || got.Pinned != want.Pinned || !reflect.DeepEqual(got.RemotePins, want.RemotePins) {
			t.Errorf("%s: summary %+v, counting the parse gives %+v", name, *got, want)
		}
		if got.Head.PreviousCID != "QmPrev" || len(got.Head.Records) != 0 {
			t.Errorf("%s: head previous %q with %d records", name, got.Head.PreviousCID, len(got.Head.Records))
		}
		if _, ok := got.Head.Get("last_updated"); !ok {
			t.Errorf("%s: the head lost its keys", name)
		}
	}
	if _, err := SummarizeManifestIn(openRoot(t, t.TempDir()), "missing.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing manifest: %v, want fs.ErrNotExist", err)
	}
}

// TestCanonicalPlainElementMatchesJCS: the signature check's fast path
// gives jcs's bytes for every record it takes, takes the records this tool
// writes, and leaves everything else to jcs.
func TestCanonicalPlainElementMatchesJCS(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 13))
	plain := randomRecord(rnd, 1)
	plain.Extra, plain.RemotePins, plain.FileName, plain.EventVersion, plain.FileSize = nil, nil, "f1.yaml", "v1", 12345
	compact, err := plain.appendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := canonicalPlainElement(nil, compact); !ok {
		t.Fatalf("a plain record of this tool is not taken: %s", compact)
	}
	var indented bytes.Buffer
	json.Indent(&indented, compact, "    ", "  ")
	docs := [][]byte{compact, indented.Bytes()}
	for i := range 400 {
		r := randomRecord(rnd, i)
		b, err := r.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	for _, mut := range []func(string) string{
		func(s string) string { return strings.Replace(s, `"pinned":`, `"pinned":null,"x":`, 1) },
		func(s string) string { return strings.Replace(s, `,"cid_profile":"kubo-default"`, ``, 1) },
		func(s string) string { return strings.Replace(s, `"file_size":12345`, `"file_size":1.2345e4`, 1) },
		func(s string) string { return strings.Replace(s, `"file_size":12345`, `"file_size":-0`, 1) },
		func(s string) string {
			return strings.Replace(s, `"file_size":12345`, `"file_size":9007199254740993`, 1)
		},
		func(s string) string { return strings.Replace(s, `"remote_pins":[]`, `"remote_pins":[ ]`, 1) },
		func(s string) string { return strings.Replace(s, `"remote_pins":[]`, `"remote_pins":null`, 1) },
		func(s string) string { return strings.Replace(s, `"remote_pins":[]`, `"remote_pins":[{}]`, 1) },
		func(s string) string {
			return strings.Replace(s, `"file_name":"f1.yaml"`, `"file_name":"f1\u002eyaml"`, 1)
		},
		func(s string) string { return strings.Replace(s, `"file_name":"f1.yaml"`, `"file_name":"f1/yaml"`, 1) },
		func(s string) string { return strings.Replace(s, `"file_name":"f1.yaml"`, `"file_name":"é"`, 1) },
		func(s string) string { return strings.Replace(s, `"file_name":"f1.yaml"`, `"file_name":7`, 1) },
		func(s string) string {
			return strings.Replace(s, `"file_name":"f1.yaml"`, `"file_name":"a","file_name":"b"`, 1)
		},
		func(s string) string { return strings.Replace(s, `"file_path"`, `"file\u005fpath"`, 1) },
		func(s string) string { return strings.Replace(s, `"pinned":`, `"pinned":1,"q":`, 1) },
		func(s string) string { return s + " " },
		func(s string) string { return s + "x" },
		func(s string) string { return "[" + s + "]" },
		func(s string) string { return "{" + s[strings.Index(s, `"file_name"`):] }, // no file_path
	} {
		docs = append(docs, []byte(mut(string(compact))))
	}
	taken := 0
	for _, d := range docs {
		got, ok := canonicalPlainElement(nil, d)
		want, werr := jcs.Transform(d)
		if !ok {
			continue
		}
		taken++
		if werr != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s:\n fast %s\n jcs  %s (%v)", d, got, want, werr)
		}
	}
	if taken < 3 {
		t.Fatalf("the fast path took %d of %d records", taken, len(docs))
	}
}

// TestSplitObjectMatchesDecodeObject: the signature check's key split is
// decodeObject's, byte for byte, and its errors are decodeObject's.
func TestSplitObjectMatchesDecodeObject(t *testing.T) {
	_, raw := sampleManifest(t)
	docs := []string{string(raw), `{}`, ` { "a" : [ 1 , {"b":null} ] , "c":"\u00e9" } `, `{"a":1,"a":2}`, "{\"a\":\"\xff\"}",
		`{"a":1} x`, `{"a":1}{}`, `[1]`, `{"a":`, ``, `{"a\u0062":1}`}
	for i := 0; i < len(raw); i += 997 {
		docs = append(docs, string(raw[:i]))
	}
	for _, d := range docs {
		got, gerr := splitObject([]byte(d))
		want, werr := decodeObject([]byte(d))
		if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
			t.Fatalf("%.60q: splitObject %v, decodeObject %v", d, gerr, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%.60q: split %v, decode %v", d, got, want)
		}
	}
}
