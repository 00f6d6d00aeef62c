package anchor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor/tree"
)

// keyManifestVersion is the seed's manifest_version key.
const keyManifestVersion = "manifest_version"

// recordRef is what verification and export read of a record: four strings
// and a size. A parsed Record with its pass-through keys, and the raw value
// ParseManifest keeps of the whole anchors array, take about four times the
// manifest's size; these take a tenth of it (20,000 records: 15 MB of JSON,
// about 60 MB parsed, 5 MB as refs).
type recordRef struct {
	FilePath   string
	FileHash   string
	IPFSCID    string
	CIDProfile string
	FileSize   int64
}

func refOf(r *Record) recordRef {
	return recordRef{FilePath: r.FilePath, FileHash: r.FileHash, IPFSCID: r.IPFSCID, CIDProfile: r.CIDProfile, FileSize: r.FileSize}
}

// manifestRefs is a manifest as verification reads it.
type manifestRefs struct {
	Records     []recordRef
	PreviousCID string
	// LastUpdated is the first last_updated key's value, unquoted (as
	// Manifest.Get reads it).
	LastUpdated string
	// HasAnchors says whether the object has an anchors key at all.
	HasAnchors bool
	// Statistics, Version: the object has a statistics object, a
	// manifest_version string (with anchors, the seed's shape).
	Statistics, Version bool
}

// looksLikeManifest says whether m has an anchor manifest's shape: an
// anchors list whose every record names a file_path, a file_hash and a CID,
// and a statistics object, a manifest_version or a previous_manifest_cid
// beside it. Other governance JSON files have an anchors key too (the SSID
// tree's proof_chain_anchors.json), so that key alone tells nothing.
func (m *manifestRefs) looksLikeManifest() bool {
	if !m.HasAnchors || !(m.Statistics || m.Version || m.PreviousCID != "") {
		return false
	}
	for _, r := range m.Records {
		if r.FilePath == "" || r.FileHash == "" {
			return false
		}
		if _, err := cid.Decode(r.IPFSCID); err != nil {
			return false
		}
	}
	return true
}

// parseManifestRefs reads what verification needs of a manifest, record by
// record, accepting exactly what ParseManifest accepts. A manifest it cannot
// read is handed to ParseManifest, whose error then names the problem (and
// which, should the two ever disagree, decides).
func parseManifestRefs(b []byte) (*manifestRefs, error) {
	// The fast decoder first (a tenth of the time for the ordinary shape),
	// then encoding/json record by record, then the whole parse.
	var refs []recordRef
	if m, err := decodeManifestWith(b, func(r *Record) { refs = append(refs, refOf(r)) }); err == nil {
		empty := m.Records != nil // an empty array, not null
		m.Records = nil
		out := refsOf(m)
		out.Records = refs
		if refs == nil && empty {
			out.Records = []recordRef{}
		}
		return out, nil
	}
	m, err := scanManifestRefs(b)
	if err == nil {
		return m, nil
	}
	full, perr := ParseManifest(b)
	if perr != nil {
		return nil, perr
	}
	return refsOf(full), nil
}

// refsOf converts a fully parsed manifest.
func refsOf(m *Manifest) *manifestRefs {
	out := &manifestRefs{PreviousCID: m.PreviousCID, LastUpdated: lastUpdated(m)}
	var raw json.RawMessage
	raw, out.HasAnchors = m.Get(keyAnchors)
	// A nil value is the parsed records' (ParseManifest keeps them, not
	// the raw array, which was an array or null).
	out.HasAnchors = out.HasAnchors && (raw == nil || string(raw) == "null" || bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")))
	if raw, ok := m.Get(keyStatistics); ok {
		out.Statistics = bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{"))
	}
	if raw, ok := m.Get(keyManifestVersion); ok {
		out.Version = bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`))
	}
	if m.Records != nil {
		out.Records = make([]recordRef, len(m.Records))
		for i := range m.Records {
			out.Records[i] = refOf(&m.Records[i])
		}
	}
	return out
}

// scanManifestRefs walks the top-level object as decodeObject does, but
// decodes the anchors array one record at a time and keeps only its refs.
func scanManifestRefs(b []byte) (*manifestRefs, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	m := &manifestRefs{}
	sawUpdated := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v", tok)
		}
		if key == keyAnchors {
			m.HasAnchors = true
			if m.Records, err = scanRecords(dec); err != nil {
				return nil, fmt.Errorf("key %q: %w", key, err)
			}
			continue
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		switch key {
		case keyStatistics:
			m.Statistics = len(raw) > 0 && raw[0] == '{'
		case keyManifestVersion:
			m.Version = len(raw) > 0 && raw[0] == '"'
		case keyPrevious:
			if string(raw) != "null" {
				if err := json.Unmarshal(raw, &m.PreviousCID); err != nil {
					return nil, fmt.Errorf("key %q: %w", key, err)
				}
			}
		case keyProcessed:
			if string(raw) != "null" {
				var w Watermark
				if err := json.Unmarshal(raw, &w); err != nil {
					return nil, fmt.Errorf("key %q: %w", key, err)
				}
			}
		case keyLastUpdated:
			if !sawUpdated {
				sawUpdated, m.LastUpdated = true, strings.Trim(string(raw), `"`)
			}
		}
	}
	if err := endOfObject(dec); err != nil {
		return nil, err
	}
	return m, nil
}

// scanRecords reads an anchors value: null (no records) or an array whose
// elements Record.UnmarshalJSON reads, one at a time.
func scanRecords(dec *json.Decoder) ([]recordRef, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("anchors is %v, not an array", tok)
	}
	out := []recordRef{}
	for dec.More() {
		var r Record
		if err := dec.Decode(&r); err != nil {
			return nil, err
		}
		out = append(out, refOf(&r))
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return out, nil
}

// loadManifestRefs reads a manifest carried in by path (LoadManifest's
// checks and errors) and keeps its bytes and refs, not its parse.
func loadManifestRefs(path string) (*manifestRefs, []byte, error) {
	b, err := readManifestFile(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := parseManifestRefs(b)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w (fix the JSON or restore it from git)", path, err)
	}
	return m, b, nil
}

// ReadManifestIn reads the manifest at rel inside the governance root
// (LoadManifestIn's confinement, size cap and errors) and checks that it
// parses, without keeping the parse: export copies the bytes.
func ReadManifestIn(r tree.Root, rel string) ([]byte, error) {
	f, err := r.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := readManifestBytes(f, rel)
	if err != nil {
		return nil, err
	}
	if _, err := parseManifestRefs(b); err != nil {
		return nil, fmt.Errorf("manifest %s: %w (fix the JSON or restore it from git)", rel, err)
	}
	return b, nil
}

func lastUpdated(m *Manifest) string {
	raw, ok := m.Get(keyLastUpdated)
	if !ok {
		return ""
	}
	return strings.Trim(string(raw), `"`)
}
