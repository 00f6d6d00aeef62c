package anchor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// RemotePin is one Pinning Service API request for a record.
type RemotePin struct {
	Service   string `json:"service"`
	RequestID string `json:"request_id"`
	Status    string `json:"status"`
	UpdatedAt string `json:"updated_at"`
	// MovedTo names the service `pins move` handed this request to
	// (status "moved"); the entry stays as history.
	MovedTo string `json:"moved_to,omitempty"`
}

// Record is one anchored file version. Fields keep the seed's order, then
// the additions; keys this version does not know are kept in Extra and
// written back after the known ones.
type Record struct {
	FilePath         string
	FileName         string
	FileHash         string
	IPFSCID          string
	IPFSGatewayURL   string
	AnchoredAt       string
	EventType        string
	EventVersion     string
	EventTimestamp   string
	BlueprintVersion string
	FileSize         int64
	EventProofAnchor string
	Pinned           bool
	RemotePins       []RemotePin
	CIDProfile       string
	Extra            []KV
}

// KV is one key of a JSON object whose value this version passes through.
type KV struct {
	Key   string
	Value json.RawMessage
}

// recordKeys maps each known key to a pointer into r, in output order.
func (r *Record) fields() []struct {
	key string
	ptr any
} {
	return []struct {
		key string
		ptr any
	}{
		{"file_path", &r.FilePath}, {"file_name", &r.FileName}, {"file_hash", &r.FileHash},
		{"ipfs_cid", &r.IPFSCID}, {"ipfs_gateway_url", &r.IPFSGatewayURL}, {"anchored_at", &r.AnchoredAt},
		{"event_type", &r.EventType}, {"event_version", &r.EventVersion}, {"event_timestamp", &r.EventTimestamp},
		{"blueprint_version", &r.BlueprintVersion}, {"file_size", &r.FileSize},
		{"event_proof_anchor", &r.EventProofAnchor}, {"pinned", &r.Pinned}, {"remote_pins", &r.RemotePins},
		{"cid_profile", &r.CIDProfile},
	}
}

// MarshalJSON writes the known keys in order, then Extra.
func (r Record) MarshalJSON() ([]byte, error) {
	return r.appendJSON(nil)
}

// appendJSON appends the record as compact JSON, the bytes encoding/json
// gives for it (HTML left unescaped), without reflection: a manifest of
// 20,000 records spent most of its encoding time in per-field encoders.
// The known keys are written in fields() order.
func (r *Record) appendJSON(b []byte) ([]byte, error) {
	return r.appendLaidOut(b, compactRecord)
}

// recordLayout is how a record's members are laid out: what precedes each
// member, what separates a key from its value, and what closes the object
// (after the last member). compactRecord is encoding/json's compact form;
// indentedRecord is what json.Indent makes of it as an element of the
// manifest's anchors array ("    " before the object, two spaces a level).
type recordLayout struct{ member, colon, close string }

var (
	compactRecord  = recordLayout{member: "", colon: ":", close: "}"}
	indentedRecord = recordLayout{member: "\n      ", colon: ": ", close: "\n    }"}
)

// appendLaidOut writes the record's known keys in fields() order, then
// Extra (compact only: render indents records with pass-through keys
// through json.Indent).
func (r *Record) appendLaidOut(b []byte, lay recordLayout) ([]byte, error) {
	first := true
	key := func(k string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, lay.member...)
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"')
		b = append(b, lay.colon...)
	}
	str := func(k, v string) {
		key(k)
		b = appendJSONString(b, v)
	}
	b = append(b, '{')
	str("file_path", r.FilePath)
	str("file_name", r.FileName)
	str("file_hash", r.FileHash)
	str("ipfs_cid", r.IPFSCID)
	str("ipfs_gateway_url", r.IPFSGatewayURL)
	str("anchored_at", r.AnchoredAt)
	str("event_type", r.EventType)
	str("event_version", r.EventVersion)
	str("event_timestamp", r.EventTimestamp)
	str("blueprint_version", r.BlueprintVersion)
	key("file_size")
	b = strconv.AppendInt(b, r.FileSize, 10)
	str("event_proof_anchor", r.EventProofAnchor)
	key("pinned")
	b = strconv.AppendBool(b, r.Pinned)
	key("remote_pins")
	if len(r.RemotePins) == 0 {
		b = append(b, "[]"...)
	} else {
		v, err := marshal(r.RemotePins)
		if err != nil {
			return nil, err
		}
		b = append(b, v...)
	}
	str("cid_profile", r.CIDProfile)
	for _, kv := range r.Extra {
		b = append(b, ',')
		b = append(b, lay.member...)
		b = appendJSONString(b, kv.Key)
		b = append(b, lay.colon...)
		var c bytes.Buffer
		if err := json.Compact(&c, kv.Value); err != nil {
			return nil, fmt.Errorf("key %q: %w", kv.Key, err)
		}
		b = append(b, c.Bytes()...)
	}
	return append(b, lay.close...), nil
}

// appendJSONString appends s as a JSON string. Plain printable ASCII, all
// a manifest's paths, hashes and CIDs usually are, is copied as is;
// anything else goes through encoding/json, so escaping stays exactly
// its own.
func appendJSONString(b []byte, s string) []byte {
	if !plainJSONString(s) {
		v, _ := marshal(s)
		return append(b, v...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// encodeRecords renders the anchors array in one buffer.
func encodeRecords(recs []Record) (json.RawMessage, error) {
	if len(recs) == 0 {
		return json.RawMessage(`[]`), nil
	}
	b := make([]byte, 0, len(recs)*700)
	b = append(b, '[')
	for i := range recs {
		var err error
		if b, err = recs[i].appendJSON(b); err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", i, recs[i].FilePath, err)
		}
		b = append(b, ',')
	}
	b[len(b)-1] = ']'
	return b, nil
}

// UnmarshalJSON reads known keys into fields and keeps the rest.
func (r *Record) UnmarshalJSON(b []byte) error {
	kvs, err := decodeObject(b)
	if err != nil {
		return err
	}
	known := map[string]any{}
	for _, f := range r.fields() {
		known[f.key] = f.ptr
	}
	for _, kv := range kvs {
		if ptr, ok := known[kv.Key]; ok {
			if string(kv.Value) == "null" {
				continue
			}
			if err := json.Unmarshal(kv.Value, ptr); err != nil {
				return fmt.Errorf("key %q: %w", kv.Key, err)
			}
			continue
		}
		r.Extra = append(r.Extra, kv)
	}
	return nil
}

// Manifest is ipfs_anchor_manifest.json. Top-level keys are kept in the
// file's order; the ones this tool manages are decoded, the rest pass
// through untouched.
type Manifest struct {
	Records []Record
	// PreviousCID links to the manifest this one replaced (the hash chain).
	PreviousCID string
	// Processed is how far the registry log has been processed.
	Processed Watermark
	// keys are every top-level key in order, values as read; the first
	// anchors key's value is nil once parsed: m.Records is its content
	// (rendered and signed from them), and the raw array is not kept.
	keys []KV
}

// Watermark marks the registry events already processed: the first Count
// events of the log, the last of which has proof anchor Last. If the log no
// longer starts that way (it was rewritten), everything counts as new again;
// content identity keeps that from creating duplicate records.
//
// Offset, Lines, TailLen and TailSHA256 are the registry cursor where those
// events end (tree.Cursor): a run reads only the bytes after it while the
// tail still matches. A manifest written before the cursor existed has none
// and its next run reads the whole log, as before.
type Watermark struct {
	Count      int    `json:"count"`
	Last       string `json:"last_proof_anchor"`
	Offset     int64  `json:"offset,omitempty"`
	Lines      int    `json:"lines,omitempty"`
	TailLen    int    `json:"tail_len,omitempty"`
	TailSHA256 string `json:"tail_sha256,omitempty"`
}

// cursor is the watermark's registry cursor, nil when it has none.
func (w Watermark) cursor() *tree.Cursor {
	if w.TailSHA256 == "" {
		return nil
	}
	return &tree.Cursor{Offset: w.Offset, Lines: w.Lines, Count: w.Count, TailLen: w.TailLen, TailSHA256: w.TailSHA256, LastEvent: w.Last}
}

func watermarkAt(c tree.Cursor) Watermark {
	return Watermark{Count: c.Count, Last: c.LastEvent, Offset: c.Offset, Lines: c.Lines, TailLen: c.TailLen, TailSHA256: c.TailSHA256}
}

// sameEvents reports whether two watermarks mark the same processed
// events, wherever their cursors stand: bytes that hold no event (a bad
// block) do not warrant a new manifest.
func (w Watermark) sameEvents(o Watermark) bool { return w.Count == o.Count && w.Last == o.Last }

// Top-level keys the tool manages.
const (
	keyAnchors     = "anchors"
	keyStatistics  = "statistics"
	keyLastUpdated = "last_updated"
	keyCreatedAt   = "created_at"
	keyPrevious    = "previous_manifest_cid"
	keyProcessed   = "processed_events"
)

// NewManifest starts an empty manifest in the seed's shape.
func NewManifest(blueprint string, now time.Time) *Manifest {
	ts, _ := json.Marshal(now.UTC().Format(time.RFC3339))
	bp, _ := json.Marshal(blueprint)
	return &Manifest{keys: []KV{
		{"blueprint_version", bp},
		{"manifest_version", json.RawMessage(`"1.0.0"`)},
		{keyCreatedAt, ts},
		{keyLastUpdated, ts},
		{keyAnchors, json.RawMessage(`[]`)},
		{keyStatistics, json.RawMessage(`{}`)},
	}}
}

// ParseManifest decodes a manifest, keeping every key. The ordinary shape
// goes through the fast decoder (manifest_decode.go); anything else is
// read by encoding/json, whose errors name the problem.
func ParseManifest(b []byte) (*Manifest, error) {
	if m, err := decodeManifest(b); err == nil {
		return m, nil
	}
	m, err := parseManifestSlow(b)
	if err != nil {
		return nil, err
	}
	in := newInterner()
	for i := range m.Records {
		in.share(&m.Records[i])
	}
	for i := range m.keys {
		if m.keys[i].Key == keyAnchors {
			m.keys[i].Value = nil // records-backed, as prepare makes it
			break
		}
	}
	return m, nil
}

// parseManifestSlow is ParseManifest with encoding/json alone: the
// reference the fast decoder is compared with, and the reader of anything
// unusual.
func parseManifestSlow(b []byte) (*Manifest, error) {
	kvs, err := decodeObject(b)
	if err != nil {
		return nil, err
	}
	m := &Manifest{keys: kvs}
	for _, kv := range kvs {
		switch kv.Key {
		case keyAnchors:
			if err := json.Unmarshal(kv.Value, &m.Records); err != nil {
				return nil, fmt.Errorf("key %q: %w", keyAnchors, err)
			}
		case keyPrevious:
			if string(kv.Value) != "null" {
				if err := json.Unmarshal(kv.Value, &m.PreviousCID); err != nil {
					return nil, fmt.Errorf("key %q: %w", keyPrevious, err)
				}
			}
		case keyProcessed:
			if string(kv.Value) != "null" {
				if err := json.Unmarshal(kv.Value, &m.Processed); err != nil {
					return nil, fmt.Errorf("key %q: %w", keyProcessed, err)
				}
			}
		}
	}
	return m, nil
}

// keysEncoded is m.keys with the records-backed anchors value encoded, for
// the rare paths that hand the key list to a generic JSON function.
func (m *Manifest) keysEncoded() ([]KV, error) {
	out := slices.Clone(m.keys)
	for i := range out {
		if out[i].Key == keyAnchors && out[i].Value == nil {
			enc, err := encodeRecords(m.Records)
			if err != nil {
				return nil, err
			}
			out[i].Value = enc
			break
		}
	}
	return out, nil
}

// LoadManifestIn reads the manifest at rel inside the governance root,
// confined by the kernel. A missing file returns fs.ErrNotExist so the
// caller can start a new one.
func LoadManifestIn(r tree.Root, rel string) (*Manifest, []byte, error) {
	b, err := readManifestIn(r, rel)
	if err != nil {
		return nil, nil, err
	}
	m, err := parseManifestAt(b, rel)
	if err != nil {
		return nil, nil, err
	}
	return m, b, nil
}

// readManifestIn is LoadManifestIn's read.
func readManifestIn(r tree.Root, rel string) ([]byte, error) {
	f, err := r.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readManifestBytes(f, rel)
}

// parseManifestAt is LoadManifestIn's parse, its error naming the file.
func parseManifestAt(b []byte, rel string) (*Manifest, error) {
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w (fix the JSON or restore it from git)", rel, err)
	}
	return m, nil
}

// LoadManifest reads the manifest at path (one carried in, --manifest);
// inside the tree use LoadManifestIn. A missing file returns fs.ErrNotExist
// so the caller can start a new one; a FIFO or device is refused without
// blocking.
func LoadManifest(path string) (*Manifest, []byte, error) {
	b, err := readManifestFile(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w (fix the JSON or restore it from git)", path, err)
	}
	return m, b, nil
}

// readManifestFile reads a manifest carried in by path. The size is
// checked before the read, so a huge file handed in is refused without
// being read (tree.ReadRegularFile reads it all).
func readManifestFile(path string) ([]byte, error) {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() > maxManifestSize {
		return nil, errManifestTooBig(path)
	}
	return tree.ReadRegularFile(path)
}

// readManifestBytes reads a manifest file, at most maxManifestSize bytes:
// a huge file put in the manifest's place must not take all memory. The
// buffer is sized from the file's size once (io.ReadAll's doubling cost a
// nothing-new run over a 12.7 MB manifest 0.15 s of page faults).
func readManifestBytes(f *os.File, name string) ([]byte, error) {
	size := 512
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if st.Size() > maxManifestSize {
			return nil, errManifestTooBig(name)
		}
		size = int(st.Size()) + 1 // +1: a file that grew is still read to its end
	}
	b := make([]byte, 0, size)
	for {
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > maxManifestSize {
			return nil, errManifestTooBig(name)
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading manifest %s: %w", name, err)
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

func errManifestTooBig(name string) error {
	return fmt.Errorf("manifest %s is larger than %d MiB, the most a manifest may be (restore it from git)", name, maxManifestSize>>20)
}

// Has reports whether a record for this path and content exists.
func (m *Manifest) Has(path, hash string) bool {
	for i := range m.Records {
		if m.Records[i].FilePath == path && m.Records[i].FileHash == hash {
			return true
		}
	}
	return false
}

// Get returns the raw value of a top-level key.
func (m *Manifest) Get(key string) (json.RawMessage, bool) {
	for _, kv := range m.keys {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

func (m *Manifest) set(key string, v any) error {
	raw, err := marshal(v)
	if err != nil {
		return err
	}
	m.setRaw(key, raw)
	return nil
}

// setRaw sets a key to JSON the caller produced (compact and valid).
func (m *Manifest) setRaw(key string, raw json.RawMessage) {
	for i := range m.keys {
		if m.keys[i].Key == key {
			m.keys[i].Value = raw
			return
		}
	}
	m.keys = append(m.keys, KV{key, raw})
}

// Touch sets last_updated and recomputes statistics from the records.
// providers are storage providers to list besides those already listed.
func (m *Manifest) Touch(now time.Time, providers ...string) error {
	if err := m.set(keyLastUpdated, now.UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	var stats []KV
	if raw, ok := m.Get(keyStatistics); ok && string(raw) != "null" {
		var err error
		if stats, err = decodeObject(raw); err != nil {
			return fmt.Errorf("key %q: %w", keyStatistics, err)
		}
	}
	var listed []string
	for _, kv := range stats {
		if kv.Key == "storage_providers" {
			_ = json.Unmarshal(kv.Value, &listed)
		}
	}
	seen := map[string]bool{}
	var all []string
	for _, p := range append(listed, providers...) {
		if p != "" && !seen[p] {
			seen[p] = true
			all = append(all, p)
		}
	}
	paths := make(map[string]struct{}, len(m.Records))
	var first, last any
	lo, hi := "", ""
	for i := range m.Records {
		r := &m.Records[i]
		paths[r.FilePath] = struct{}{}
		if d := r.AnchoredAt; d != "" {
			if lo == "" || d < lo {
				lo = d
			}
			if d > hi {
				hi = d
			}
		}
	}
	if lo != "" {
		first, last = lo, hi
	}
	if all == nil {
		all = []string{}
	}
	for _, s := range []struct {
		k string
		v any
	}{
		{"total_anchors", len(m.Records)}, {"total_files_anchored", len(paths)},
		{"first_anchor_date", first}, {"last_anchor_date", last}, {"storage_providers", all},
	} {
		raw, _ := marshal(s.v)
		stats = setKV(stats, s.k, raw)
	}
	obj, err := marshalObject(stats)
	if err != nil {
		return err
	}
	return m.set(keyStatistics, json.RawMessage(obj))
}

func setKV(kvs []KV, key string, v json.RawMessage) []KV {
	for i := range kvs {
		if kvs[i].Key == key {
			kvs[i].Value = v
			return kvs
		}
	}
	return append(kvs, KV{key, v})
}

// Marshal renders the manifest with 2-space indentation, the seed's style,
// signed by s (SPEC 2.2): every manifest the tool writes goes through here,
// so none can be written unsigned by mistake; s must not be nil.
func (m *Manifest) Marshal(s Signer) ([]byte, error) {
	return m.marshalInto(s, nil)
}

// marshalInto is Marshal building both the canonical form (to sign) and
// the rendered manifest in buf, one after the other: the returned bytes
// are buf's (grown to the manifest's size when smaller), so a run that
// commits often keeps one buffer, and the two large forms never exist at
// once.
func (m *Manifest) marshalInto(s Signer, buf []byte) ([]byte, error) {
	if s == nil {
		return nil, errNoSigner
	}
	if err := m.prepare(); err != nil {
		return nil, err
	}
	if size := m.renderSize(); cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	if err := m.sign(s, buf); err != nil {
		return nil, err
	}
	return m.renderInto(buf)
}

// MarshalUnsigned renders the manifest without a signature; a signature it
// was read with is dropped, since it would no longer match. Only dry runs
// (which write nothing) and tests that forge manifests use it.
func (m *Manifest) MarshalUnsigned() ([]byte, error) {
	if err := m.prepare(); err != nil {
		return nil, err
	}
	m.keys = slices.DeleteFunc(m.keys, func(kv KV) bool { return kv.Key == keySignature })
	return m.render()
}

// prepare writes the decoded fields back into the key list; the anchors
// stay records-backed (rendered from m.Records).
func (m *Manifest) prepare() error {
	// The first anchors key stands for m.Records (a nil value: render and
	// sign build the array from the records); a document without one
	// gets it.
	m.setRaw(keyAnchors, nil)
	if m.PreviousCID != "" {
		if err := m.set(keyPrevious, m.PreviousCID); err != nil {
			return err
		}
	}
	if m.Processed.Count > 0 {
		if err := m.set(keyProcessed, m.Processed); err != nil {
			return err
		}
	}
	return nil
}

// render writes the manifest with 2-space indentation: the bytes
// json.Indent gives for the compact object (TestRenderMatchesIndent), but
// each value indented on its own and the records written straight into
// the output, so the manifest exists once in memory instead of as the
// compact object, the indented copy and the buffer's growth steps.
func (m *Manifest) render() ([]byte, error) {
	return m.renderInto(make([]byte, 0, m.renderSize()))
}

// renderSize is about the rendered manifest's size (a little more).
func (m *Manifest) renderSize() int {
	size := 64
	for _, kv := range m.keys {
		size += len(kv.Key) + len(kv.Value) + len(kv.Value)/4 + 8
	}
	for i := range m.Records {
		size += recordIndentedSize(&m.Records[i])
	}
	return size
}

// renderInto is render appending to buf[:0].
func (m *Manifest) renderInto(buf []byte) ([]byte, error) {
	out := bytes.NewBuffer(buf[:0])
	out.WriteByte('{')
	var scratch []byte
	for i, kv := range m.keys {
		if i > 0 {
			out.WriteByte(',')
		}
		out.WriteString("\n  ")
		k, err := marshal(kv.Key)
		if err != nil {
			return nil, err
		}
		out.Write(k)
		out.WriteString(": ")
		if kv.Key == keyAnchors && kv.Value == nil {
			if scratch, err = appendIndentedRecords(out, m.Records, scratch); err != nil {
				return nil, err
			}
			continue
		}
		if err := json.Indent(out, kv.Value, "  ", "  "); err != nil {
			return nil, fmt.Errorf("key %q: %w", kv.Key, err)
		}
	}
	if len(m.keys) > 0 {
		out.WriteByte('\n')
	}
	out.WriteString("}\n")
	return out.Bytes(), nil
}

// appendIndentedRecords writes the anchors array at the nesting of a
// top-level value. A plain record (see canonicalRecord) is written
// directly; any other goes through its compact encoding and json.Indent.
func appendIndentedRecords(out *bytes.Buffer, recs []Record, scratch []byte) ([]byte, error) {
	if len(recs) == 0 {
		out.WriteString("[]")
		return scratch, nil
	}
	out.WriteByte('[')
	for i := range recs {
		if i > 0 {
			out.WriteByte(',')
		}
		out.WriteString("\n    ")
		r := &recs[i]
		if plainRecord(r) {
			// Written laid out directly: its strings need no escaping and
			// it has no remote pins, so its indented form is known.
			b, _ := r.appendLaidOut(out.AvailableBuffer(), indentedRecord)
			out.Write(b)
			continue
		}
		var err error
		if scratch, err = r.appendJSON(scratch[:0]); err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", i, r.FilePath, err)
		}
		if err := json.Indent(out, scratch, "    ", "  "); err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", i, r.FilePath, err)
		}
	}
	out.WriteString("\n  ]")
	return scratch, nil
}

// recordIndentedSize is about what a record takes indented.
func recordIndentedSize(r *Record) int {
	return len(r.FilePath) + len(r.FileName) + len(r.FileHash) + len(r.IPFSCID) + len(r.IPFSGatewayURL) +
		len(r.AnchoredAt) + len(r.EventType) + len(r.EventVersion) + len(r.EventTimestamp) +
		len(r.BlueprintVersion) + len(r.EventProofAnchor) + len(r.CIDProfile) + 400
}

// decodeObject reads a JSON object's keys in order.
func decodeObject(b []byte) ([]KV, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var kvs []KV
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v", tok)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		kvs = append(kvs, KV{key, raw})
	}
	if err := endOfObject(dec); err != nil {
		return nil, err
	}
	return kvs, nil
}

// endOfObject reads the top-level object's closing brace and makes sure
// nothing follows it.
func endOfObject(dec *json.Decoder) error {
	if _, err := dec.Token(); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the top-level object")
	}
	if _, err := dec.Token(); err == nil {
		return errors.New("data after the top-level object")
	}
	return nil
}

func marshalObject(kvs []KV) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range kvs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := marshal(kv.Key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(kv.Value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshal(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
