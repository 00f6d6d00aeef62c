package anchor

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/ssid/ssid-anchor/anchor/tree"
)

// The manifest decoder every reader uses (ParseManifest). A profile of a
// 16,500-record manifest (12.7 MB) showed encoding/json's token API plus
// Record.UnmarshalJSON (a decoder, a map and an Unmarshal call per key of
// every record) as most of an anchoring run's CPU and garbage before any
// file was read, and the decoded records holding a separate copy of every
// string: the event, version, timestamp, blueprint and profile that the
// records of one run share.
//
// decodeManifest reads the same documents with jsontext (the tokenizer of
// encoding/json/v2, already in the module graph through kubo) one token at
// a time, and keeps one copy of each string that records share. It accepts
// only the ordinary shape: anything unusual (a duplicate key, invalid
// UTF-8, a value of an unexpected type, a record that is not an object)
// makes it give up, and ParseManifest then reads the document with
// encoding/json as before, so what is accepted, how it is read and every
// error message stay exactly as they were (TestDecodeManifestAgrees and
// FuzzParseManifest compare the two).

// errUnusual means the fast decoder leaves the document to encoding/json.
var errUnusual = errors.New("not the ordinary manifest shape")

// decodeManifest is ParseManifest's fast path.
func decodeManifest(b []byte) (*Manifest, error) { return decodeManifestWith(b, nil) }

// decodeManifestWith decodes b; with each set, every record is handed to
// it (in a struct reused for the next one) instead of kept.
func decodeManifestWith(b []byte, each func(*Record)) (*Manifest, error) {
	d := jsontext.NewDecoder(bytes.NewBuffer(b))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, errUnusual
	}
	m := &Manifest{}
	in := newInterner()
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return nil, errUnusual
		}
		key := name.String()
		if key == keyAnchors {
			recs, err := decodeRecords(d, in, len(b)/recordBytesMin, each)
			if err != nil {
				return nil, err
			}
			m.Records = recs
			// The records are the anchors' content from now on: render
			// and sign build the array from them (see Manifest.keys).
			m.keys = append(m.keys, KV{key, nil})
			continue
		}
		v, err := d.ReadValue()
		if err != nil {
			return nil, errUnusual
		}
		raw := json.RawMessage(bytes.Clone(v))
		switch key {
		case keyPrevious:
			if string(raw) != "null" {
				if err := json.Unmarshal(raw, &m.PreviousCID); err != nil {
					return nil, errUnusual
				}
			}
		case keyProcessed:
			if string(raw) != "null" {
				if err := json.Unmarshal(raw, &m.Processed); err != nil {
					return nil, errUnusual
				}
			}
		}
		m.keys = append(m.keys, KV{key, raw})
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, errUnusual
	}
	if _, err := d.ReadValue(); err != io.EOF {
		return nil, errUnusual // data after the object: encoding/json names it
	}
	return m, nil
}

// scanProcessed reads only a manifest's processed_events watermark,
// checking the rest is well-formed JSON without decoding the records:
// all a run needs to find that the registry log has nothing new. Anything
// unusual (errUnusual) is left to ParseManifest, which decides.
func scanProcessed(b []byte) (Watermark, error) {
	var w Watermark
	d := jsontext.NewDecoder(bytes.NewBuffer(b))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return w, errUnusual
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return w, errUnusual
		}
		if name.String() != keyProcessed {
			if err := d.SkipValue(); err != nil {
				return w, errUnusual
			}
			continue
		}
		v, err := d.ReadValue()
		if err != nil {
			return w, errUnusual
		}
		if string(v) != "null" {
			if err := json.Unmarshal(v, &w); err != nil {
				return w, errUnusual
			}
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return w, errUnusual
	}
	if _, err := d.ReadValue(); err != io.EOF {
		return w, errUnusual
	}
	return w, nil
}

// recordBytesMin is fewer bytes than a record this tool writes takes in
// the manifest (about 770 indented): the record slice is sized from the
// file once instead of growing (copying) as it fills. Room a manifest of
// other shapes does not use is never touched.
const recordBytesMin = 500

// decodeRecords reads the anchors value: null or an array of records,
// kept or, with each set, handed to each one by one.
func decodeRecords(d *jsontext.Decoder, in *interner, capHint int, each func(*Record)) ([]Record, error) {
	switch d.PeekKind() {
	case 'n':
		if _, err := d.ReadToken(); err != nil {
			return nil, errUnusual
		}
		return nil, nil
	case '[':
	default:
		return nil, errUnusual
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, errUnusual
	}
	if each != nil {
		capHint = 0
	}
	recs := make([]Record, 0, capHint)
	var one Record
	for d.PeekKind() != ']' {
		if each != nil {
			one = Record{}
			if err := decodeRecord(d, &one, in); err != nil {
				return nil, err
			}
			each(&one)
			continue
		}
		recs = append(recs, Record{})
		if err := decodeRecord(d, &recs[len(recs)-1], in); err != nil {
			return nil, err
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, errUnusual
	}
	return recs, nil
}

// decodeRecord reads one record as Record.UnmarshalJSON does: known keys
// into fields (null leaves a field empty), the rest into Extra in order.
func decodeRecord(d *jsontext.Decoder, r *Record, in *interner) error {
	if d.PeekKind() != '{' {
		return errUnusual
	}
	if _, err := d.ReadToken(); err != nil {
		return errUnusual
	}
	var name []byte
	for d.PeekKind() != '}' {
		v, err := d.ReadValue()
		if err != nil {
			return errUnusual
		}
		if name, err = unquote(name[:0], v); err != nil {
			return errUnusual
		}
		if v, err = d.ReadValue(); err != nil {
			return errUnusual
		}
		if string(v) == "null" {
			if !knownKey(name) {
				r.Extra = append(r.Extra, KV{string(name), json.RawMessage("null")})
			}
			continue
		}
		var s *string
		shared := false
		switch string(name) {
		case "file_path":
			s = &r.FilePath
		case "file_name":
			s = &r.FileName
		case "file_hash":
			s = &r.FileHash
		case "ipfs_cid":
			s = &r.IPFSCID
		case "ipfs_gateway_url":
			s = &r.IPFSGatewayURL
		case "anchored_at":
			s, shared = &r.AnchoredAt, true
		case "event_type":
			s, shared = &r.EventType, true
		case "event_version":
			s, shared = &r.EventVersion, true
		case "event_timestamp":
			s, shared = &r.EventTimestamp, true
		case "blueprint_version":
			s, shared = &r.BlueprintVersion, true
		case "event_proof_anchor":
			s, shared = &r.EventProofAnchor, true
		case "cid_profile":
			s, shared = &r.CIDProfile, true
		case "file_size":
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return errUnusual
			}
			r.FileSize = n
			continue
		case "pinned":
			switch string(v) {
			case "true":
				r.Pinned = true
			case "false":
				r.Pinned = false
			default:
				return errUnusual
			}
			continue
		case "remote_pins":
			if err := json.Unmarshal(v, &r.RemotePins); err != nil {
				return errUnusual
			}
			continue
		default:
			r.Extra = append(r.Extra, KV{string(name), json.RawMessage(bytes.Clone(v))})
			continue
		}
		if len(v) == 0 || v[0] != '"' {
			return errUnusual
		}
		if bytes.IndexByte(v, '\\') < 0 {
			*s = in.string(v[1:len(v)-1], shared)
		} else {
			u, err := jsontext.AppendUnquote(nil, v)
			if err != nil {
				return errUnusual
			}
			*s = string(u)
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return errUnusual
	}
	shareName(r)
	return nil
}

// shareName points file_name at the end of file_path when it is that
// (every record this tool writes: the path's last element) instead of
// keeping a copy.
func shareName(r *Record) {
	if r.FileName != "" && strings.HasSuffix(r.FilePath, r.FileName) {
		r.FileName = r.FilePath[len(r.FilePath)-len(r.FileName):]
	}
}

// unquote appends the name a JSON string token holds.
func unquote(dst []byte, v []byte) ([]byte, error) {
	if len(v) < 2 || v[0] != '"' {
		return nil, errUnusual
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return append(dst, v[1:len(v)-1]...), nil
	}
	return jsontext.AppendUnquote(dst, v)
}

func knownKey(name []byte) bool {
	switch string(name) {
	case "file_path", "file_name", "file_hash", "ipfs_cid", "ipfs_gateway_url", "anchored_at",
		"event_type", "event_version", "event_timestamp", "blueprint_version", "file_size",
		"event_proof_anchor", "pinned", "remote_pins", "cid_profile":
		return true
	}
	return false
}

// interner keeps one copy of each string records share (every record of
// a run has the same event, version, timestamp and profile).
type interner struct{ m map[string]string }

func newInterner() *interner { return &interner{m: map[string]string{}} }

// string returns b as a string, the kept copy when shared.
func (in *interner) string(b []byte, shared bool) string {
	if !shared {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	in.m[s] = s
	return s
}

// share replaces a decoded record's shared strings with kept copies (the
// records encoding/json decoded on the slow path).
func (in *interner) share(r *Record) {
	for _, s := range []*string{&r.AnchoredAt, &r.EventType, &r.EventVersion, &r.EventTimestamp,
		&r.BlueprintVersion, &r.EventProofAnchor, &r.CIDProfile} {
		if k, ok := in.m[*s]; ok {
			*s = k
		} else {
			in.m[*s] = *s
		}
	}
	shareName(r)
}

// Summary is what status and metrics show of a manifest: its records
// counted, read one at a time and not kept (16,500 of them are 10 MB), and
// the manifest without its records.
type Summary struct {
	Records, Files, Pinned int
	// RemotePins counts the records' remote pin requests by status.
	RemotePins map[string]int
	// CIDs are the records' ipfs_cid values, one per record in order
	// ("" for a record without one): status counts "pinned" from the
	// repo's pin set, not from the records' own flags.
	CIDs []string
	// Head is the manifest with every top-level key but no records.
	Head *Manifest
}

// SummarizeManifestIn reads the manifest at rel inside the governance root
// as LoadManifestIn does (same checks and errors) and counts its records.
func SummarizeManifestIn(r tree.Root, rel string) (*Summary, error) {
	b, err := readManifestIn(r, rel)
	if err != nil {
		return nil, err
	}
	return summarize(b, rel)
}

// SummarizeManifest counts the records of a manifest held in b (one read
// from the repo, for example); errors are ParseManifest's.
func SummarizeManifest(b []byte) (*Summary, error) { return summarize(b, "") }

func summarize(b []byte, rel string) (*Summary, error) {
	s := &Summary{RemotePins: map[string]int{}}
	files := map[string]struct{}{}
	count := func(rec *Record) {
		s.Records++
		if _, ok := files[rec.FilePath]; !ok {
			files[rec.FilePath] = struct{}{}
		}
		if rec.Pinned {
			s.Pinned++
		}
		s.CIDs = append(s.CIDs, rec.IPFSCID)
		for _, rp := range rec.RemotePins {
			s.RemotePins[rp.Status]++
		}
	}
	m, err := decodeManifestWith(b, count)
	if err != nil {
		// The unusual shapes: the whole parse, which decides and names
		// any problem.
		*s = Summary{RemotePins: map[string]int{}}
		clear(files)
		if rel == "" {
			m, err = ParseManifest(b)
		} else {
			m, err = parseManifestAt(b, rel)
		}
		if err != nil {
			return nil, err
		}
		for i := range m.Records {
			count(&m.Records[i])
		}
		m.Records = nil
	}
	s.Files = len(files)
	s.Head = m
	return s, nil
}

// splitObject is decodeObject (a JSON object's keys in order with their
// raw values) for a whole manifest, with jsontext: encoding/json's token
// API took half of checking a 12.7 MB manifest's signature. Anything
// jsontext refuses (a duplicate key, invalid UTF-8, not JSON) goes to
// decodeObject, which decides and names the problem.
func splitObject(b []byte) ([]KV, error) {
	d := jsontext.NewDecoder(bytes.NewBuffer(b))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return decodeObject(b)
	}
	var kvs []KV
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return decodeObject(b)
		}
		key := name.String() // before the next read voids the token
		v, err := d.ReadValue()
		if err != nil {
			return decodeObject(b)
		}
		// The raw value aliases b (ReadValue's bytes are the input's).
		start := int(d.InputOffset()) - len(v)
		kvs = append(kvs, KV{key, json.RawMessage(b[start : start+len(v) : start+len(v)])})
	}
	if _, err := d.ReadToken(); err != nil {
		return decodeObject(b)
	}
	if _, err := d.ReadValue(); err != io.EOF {
		return decodeObject(b)
	}
	return kvs, nil
}
