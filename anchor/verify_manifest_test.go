package anchor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"testing"

	"github.com/gowebpki/jcs"
)

// canonicalCases are objects whose canonical form the member-by-member
// builder must write byte for byte as jcs does on the whole object.
var canonicalCases = []string{
	`{}`,
	`{"b":[],"a":[ ]}`,
	`{"anchors":[{"z":1,"a":[1e20,-0.0,"\u00e9\ud83d\ude00"]},{"y":null}],"€":1,"\ud83d\ude00":2,"\ufb33":3,"a":{"c":[[1,2],[]],"b":true}}`,
	`{"s":["x\"],[{" , "\\", {"k":"]}\\"} ,[ "," ] ,"",0]}`,
	`{"x":[1, 2 ,3],"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001]}`,
}

func TestCanonicalMembersMatchesJCS(t *testing.T) {
	seed := int64(1313)
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewSource(seed))
	cases := append([]string(nil), canonicalCases...)
	if raw, err := os.ReadFile("testdata/ipfs_anchor_manifest.json"); err == nil {
		cases = append(cases, string(raw))
	}
	for range 50 {
		cases = append(cases, randomObject(rnd, 3))
	}
	for i, c := range cases {
		kvs, err := decodeObject([]byte(c))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		obj, _ := marshalObject(kvs)
		want, werr := jcs.Transform(obj)
		got, gerr := canonicalMembers(kvs)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("case %d: %s\njcs:  %s (%v)\nours: %s (%v)", i, c, want, werr, got, gerr)
		}
	}
	// What jcs refuses in the whole object is refused too.
	for _, bad := range []string{`{"a":1,"a":2}`, `{"a":[{"b":1,"b":2}]}`, `{"a":["\ud800"]}`} {
		kvs, err := decodeObject([]byte(bad))
		if err != nil {
			continue
		}
		if _, err := canonicalMembers(kvs); err == nil {
			t.Errorf("%s: canonicalised; jcs refuses it", bad)
		}
	}
}

func randomObject(rnd *rand.Rand, depth int) string {
	keys := []string{"a", "b", "anchors", "é", "😀", "\u00ff", "Z", "aa", "10", "1"}
	var b bytes.Buffer
	b.WriteByte('{')
	n := rnd.Intn(5)
	used := map[string]bool{}
	for i := 0; i < n; i++ {
		k := keys[rnd.Intn(len(keys))]
		if used[k] {
			continue
		}
		used[k] = true
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.WriteString(randomValue(rnd, depth))
	}
	b.WriteByte('}')
	return b.String()
}

func randomValue(rnd *rand.Rand, depth int) string {
	switch r := rnd.Intn(7); {
	case depth > 0 && r == 0:
		return randomObject(rnd, depth-1)
	case depth > 0 && r == 1:
		var parts []string
		for range rnd.Intn(4) {
			parts = append(parts, randomValue(rnd, depth-1))
		}
		s := "["
		for i, p := range parts {
			if i > 0 {
				s += " , "
			}
			s += p
		}
		return s + "]"
	case r == 2:
		return fmt.Sprintf("%g", rnd.NormFloat64()*1e6)
	case r == 3:
		return `"x\u0041\n"`
	case r == 4:
		return "null"
	default:
		return fmt.Sprint(rnd.Intn(1000))
	}
}

// TestParseManifestRefs: the record-by-record reader accepts what
// ParseManifest accepts and reads the same refs.
func TestParseManifestRefs(t *testing.T) {
	raw, err := os.ReadFile("testdata/ipfs_anchor_manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range [][]byte{
		raw,
		[]byte(`{"anchors":null,"last_updated":"x","last_updated":"y"}`),
		[]byte(`{"anchors":[],"previous_manifest_cid":null}`),
		[]byte(`{"anchors":[{"file_path":"a","file_size":3,"cid_profile":"p","ipfs_cid":"Qm","x":[1,{"y":null}]}],"previous_manifest_cid":"Qm"}`),
		[]byte(`{"anchors":[{"file_path":"a"}],"anchors":[{"file_path":"b"}]}`),
		[]byte(`{"anchors":[{"file_size":"3"}]}`),
		[]byte(`{"anchors":{}}`),
		[]byte(`{"anchors":[null]}`),
		[]byte(`{"processed_events":{"count":"x"}}`),
		[]byte(`{"anchors":[]} x`),
		[]byte(`[]`),
		[]byte(`{"previous_manifest_cid":1}`),
	} {
		checkRefsAgree(t, fmt.Sprint(i), c)
	}
}

func checkRefsAgree(t *testing.T, name string, b []byte) {
	t.Helper()
	full, ferr := ParseManifest(b)
	got, gerr := parseManifestRefs(b)
	if (ferr == nil) != (gerr == nil) {
		t.Fatalf("%s: ParseManifest: %v, parseManifestRefs: %v", name, ferr, gerr)
	}
	if ferr != nil {
		if ferr.Error() != gerr.Error() {
			t.Fatalf("%s: errors differ: %v / %v", name, ferr, gerr)
		}
		return
	}
	scanned, serr := scanManifestRefs(b)
	if serr != nil {
		t.Fatalf("%s: the scanner refuses what ParseManifest reads: %v", name, serr)
	}
	if want := refsOf(full); !reflect.DeepEqual(scanned, want) || !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: refs differ:\n%+v\n%+v", name, scanned, want)
	}
}

func FuzzParseManifestRefs(f *testing.F) {
	raw, _ := os.ReadFile("testdata/ipfs_anchor_manifest.json")
	f.Add(raw)
	f.Add([]byte(`{"anchors":[{"file_path":"a","x":[1,{"y":null}]}],"previous_manifest_cid":"Qm"}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkRefsAgree(t, "fuzz", data) })
}
