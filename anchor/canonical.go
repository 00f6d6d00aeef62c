package anchor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf16"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/gowebpki/jcs"
)

// canonicalMembers is jcs.Transform of the object made of kvs, built one
// top-level member, and one element of a top-level array, at a time, so
// only one record's parse tree exists at once. RFC 8785 sorts only object
// members and writes arrays element by element, so the output is the same
// bytes (TestCanonicalMembersMatchesJCS). jcs still checks every piece: the
// object's skeleton (keys, duplicate keys, every value but the arrays' own
// elements) first, then each value.
func canonicalMembers(kvs []KV) ([]byte, error) {
	skel := make([]KV, len(kvs))
	size := 2
	for i, kv := range kvs {
		skel[i] = kv
		if isArray(kv.Value) {
			skel[i].Value = json.RawMessage(`[]`)
		}
		size += len(kv.Key) + len(kv.Value) + 4
	}
	obj, err := marshalObject(skel)
	if err != nil {
		return nil, err
	}
	if _, err := jcs.Transform(obj); err != nil {
		return nil, err
	}
	type member struct {
		sortKey []uint16
		kv      KV
	}
	ms := make([]member, len(kvs))
	for i, kv := range kvs {
		ms[i] = member{utf16.Encode([]rune(kv.Key)), kv}
	}
	slices.SortStableFunc(ms, func(a, b member) int { return slices.Compare(a.sortKey, b.sortKey) })
	var out bytes.Buffer
	out.Grow(size)
	out.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			out.WriteByte(',')
		}
		k, err := marshal(m.kv.Key)
		if err != nil {
			return nil, err
		}
		ck, err := jcs.Transform(k)
		if err != nil {
			return nil, err
		}
		out.Write(ck)
		out.WriteByte(':')
		if err := canonicalValue(&out, m.kv.Value); err != nil {
			return nil, err
		}
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// canonicalValue appends the canonical form of v; an array's elements are
// canonicalised one by one.
func canonicalValue(out *bytes.Buffer, v json.RawMessage) error {
	if !isArray(v) {
		c, err := jcs.Transform(v)
		if err != nil {
			return err
		}
		out.Write(c)
		return nil
	}
	out.WriteByte('[')
	n := 0
	err := eachElement(v, func(el []byte) error {
		if n > 0 {
			out.WriteByte(',')
		}
		n++
		if c, ok := canonicalPlainElement(out.AvailableBuffer(), el); ok {
			out.Write(c)
			return nil
		}
		c, err := jcs.Transform(el)
		if err != nil {
			return err
		}
		out.Write(c)
		return nil
	})
	if err != nil {
		return err
	}
	out.WriteByte(']')
	return nil
}

// eachElement calls fn with each element of the JSON array v. v was read
// by encoding/json (decodeObject) and is valid JSON, so finding where an
// element ends needs only nesting and strings; each element is then parsed
// by jcs. (encoding/json's Decoder would scan every element twice.)
func eachElement(v []byte, fn func([]byte) error) error {
	i := bytes.IndexByte(v, '[') + 1
	for i < len(v) {
		switch v[i] {
		case ' ', '\t', '\r', '\n', ',':
			i++
			continue
		case ']':
			return nil
		}
		start, depth := i, 0
	scan:
		for ; i < len(v); i++ {
			switch v[i] {
			case '"':
				for i++; i < len(v) && v[i] != '"'; i++ {
					if v[i] == '\\' {
						i++
					}
				}
			case '[', '{':
				depth++
			case ']', '}':
				if depth == 0 {
					break scan
				}
				depth--
			case ',':
				if depth == 0 {
					break scan
				}
			}
		}
		if err := fn(bytes.TrimRight(v[start:i], " \t\r\n")); err != nil {
			return err
		}
	}
	return fmt.Errorf("array: unexpected end")
}

func isArray(v json.RawMessage) bool {
	t := bytes.TrimLeft(v, " \t\r\n")
	return len(t) > 0 && t[0] == '['
}

// canonicalManifest is canonicalize(m.keys) computed with the anchors array
// built from m.Records instead of parsed back from its JSON: gowebpki/jcs
// parses the whole document into a tree, which for 20,000 records was half
// a second of CPU and the largest block of the run's peak memory. Every
// other top-level value still goes through jcs, one at a time, and so do
// records that are not plain (see canonicalRecord). The anchors key of
// m.keys stands for m.Records (prepare sets it just before). The form is
// appended to buf[:0] and the records are written straight into it, so
// the manifest's canonical form exists once.
// A test checks the result is byte for byte canonicalize's.
func (m *Manifest) canonicalManifest(buf []byte) ([]byte, error) {
	type member struct {
		key     []uint16 // JCS sorts members by the UTF-16 code units of the key
		text    []byte   // "key":value, canonical
		anchors bool     // built from m.Records
	}
	var members []member
	seen := map[string]bool{}
	n := 2
	for _, kv := range m.keys {
		if kv.Key == keySignature {
			continue
		}
		if seen[kv.Key] {
			// jcs refuses duplicate keys; let it say so.
			kvs, err := m.keysEncoded()
			if err != nil {
				return nil, err
			}
			return canonicalize(kvs)
		}
		seen[kv.Key] = true
		mb := member{key: utf16.Encode([]rune(kv.Key))}
		if kv.Key == keyAnchors {
			mb.anchors = true
			n += len(`"anchors":[]`)
			for i := range m.Records {
				// Keys and punctuation of a plain record: about 290 bytes.
				n += recordIndentedSize(&m.Records[i]) - 400 + 300
			}
		} else {
			obj, _ := marshalObject([]KV{kv})
			c, err := jcs.Transform(obj)
			if err != nil {
				return nil, fmt.Errorf("canonicalising the manifest (RFC 8785): key %q: %w", kv.Key, err)
			}
			mb.text = c[1 : len(c)-1]
			n += len(mb.text) + 1
		}
		members = append(members, mb)
	}
	slices.SortFunc(members, func(a, b member) int { return slices.Compare(a.key, b.key) })
	out := buf[:0]
	if cap(out) < n {
		out = make([]byte, 0, n)
	}
	out = append(out, '{')
	for i, mb := range members {
		if i > 0 {
			out = append(out, ',')
		}
		if !mb.anchors {
			out = append(out, mb.text...)
			continue
		}
		out = append(out, `"anchors":`...)
		var err error
		if out, err = canonicalRecords(out, m.Records); err != nil {
			return nil, err
		}
	}
	return append(out, '}'), nil
}

// canonicalRecords appends the RFC 8785 form of the anchors array.
func canonicalRecords(b []byte, recs []Record) ([]byte, error) {
	b = append(b, '[')
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = canonicalRecord(b, &recs[i]); err != nil {
			return nil, fmt.Errorf("canonicalising the manifest (RFC 8785): record %d (%s): %w", i, recs[i].FilePath, err)
		}
	}
	return append(b, ']'), nil
}

// maxExactInt is 2^53: integers below it print in JCS (ES6 number
// formatting) as plain decimal digits.
const maxExactInt = 1 << 53

// canonicalRecord appends one record's RFC 8785 form. A plain record (no
// pass-through keys, no remote pins, printable-ASCII strings without quote
// or backslash, a size below 2^53) is written directly: its keys are fixed
// and ASCII, so their sorted order is fixed too, and its strings and
// number need no escaping or formatting. Any other record goes through jcs.
func canonicalRecord(b []byte, r *Record) ([]byte, error) {
	if !plainRecord(r) {
		raw, err := r.appendJSON(nil)
		if err != nil {
			return nil, err
		}
		c, err := jcs.Transform(raw)
		if err != nil {
			return nil, err
		}
		return append(b, c...), nil
	}
	// Keys in UTF-16 (here: byte) order.
	str := func(key, v string) {
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, `":"`...)
		b = append(b, v...)
		b = append(b, `",`...)
	}
	b = append(b, '{')
	str("anchored_at", r.AnchoredAt)
	str("blueprint_version", r.BlueprintVersion)
	str("cid_profile", r.CIDProfile)
	str("event_proof_anchor", r.EventProofAnchor)
	str("event_timestamp", r.EventTimestamp)
	str("event_type", r.EventType)
	str("event_version", r.EventVersion)
	str("file_hash", r.FileHash)
	str("file_name", r.FileName)
	str("file_path", r.FilePath)
	b = append(b, `"file_size":`...)
	b = strconv.AppendInt(b, r.FileSize, 10)
	b = append(b, ',')
	str("ipfs_cid", r.IPFSCID)
	str("ipfs_gateway_url", r.IPFSGatewayURL)
	b = append(b, `"pinned":`...)
	b = strconv.AppendBool(b, r.Pinned)
	b = append(b, `,"remote_pins":[]}`...)
	return b, nil
}

// plainRecord reports whether r has no pass-through keys, no remote pins,
// a size below 2^53 and only plain strings (plainJSONString): such a record
// is written directly in the canonical and the indented form.
func plainRecord(r *Record) bool {
	if len(r.Extra) != 0 || len(r.RemotePins) != 0 || r.FileSize >= maxExactInt || r.FileSize <= -maxExactInt {
		return false
	}
	for _, s := range [...]string{r.AnchoredAt, r.BlueprintVersion, r.CIDProfile, r.EventProofAnchor, r.EventTimestamp, r.EventType,
		r.EventVersion, r.FileHash, r.FileName, r.FilePath, r.IPFSCID, r.IPFSGatewayURL} {
		if !plainJSONString(s) {
			return false
		}
	}
	return true
}

// plainJSONString reports whether s is printable ASCII without a quote or
// backslash: JSON and JCS both write such a string as it is.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// canonicalPlainElement is jcs.Transform of one element of the anchors
// array when the element is a record as this tool writes it: an object of
// exactly the record's fifteen keys, each once, whose strings are plain
// (plainJSONString, no escapes), file_size an integer below 2^53 written
// as Go writes it, pinned a boolean and remote_pins an empty array. Its
// canonical form is then canonicalRecord's, which builds it without a
// parse tree: checking a signature over 16,500 records took four seconds
// in jcs. ok is false for anything else (jcs decides).
// TestCanonicalPlainElementMatchesJCS compares the two.
func canonicalPlainElement(dst, el []byte) (out []byte, ok bool) {
	d := jsontext.NewDecoder(bytes.NewBuffer(el))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, false
	}
	var r Record
	seen := 0
	for d.PeekKind() != '}' {
		name, err := d.ReadValue()
		if err != nil || bytes.IndexByte(name, '\\') >= 0 || len(name) < 2 {
			return nil, false
		}
		key := string(name[1 : len(name)-1])
		v, err := d.ReadValue()
		if err != nil {
			return nil, false
		}
		var dst *string
		switch key {
		case "file_path":
			dst = &r.FilePath
		case "file_name":
			dst = &r.FileName
		case "file_hash":
			dst = &r.FileHash
		case "ipfs_cid":
			dst = &r.IPFSCID
		case "ipfs_gateway_url":
			dst = &r.IPFSGatewayURL
		case "anchored_at":
			dst = &r.AnchoredAt
		case "event_type":
			dst = &r.EventType
		case "event_version":
			dst = &r.EventVersion
		case "event_timestamp":
			dst = &r.EventTimestamp
		case "blueprint_version":
			dst = &r.BlueprintVersion
		case "event_proof_anchor":
			dst = &r.EventProofAnchor
		case "cid_profile":
			dst = &r.CIDProfile
		case "file_size":
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || strconv.FormatInt(n, 10) != string(v) || n >= maxExactInt || n <= -maxExactInt {
				return nil, false
			}
			r.FileSize = n
		case "pinned":
			switch string(v) {
			case "true":
				r.Pinned = true
			case "false":
			default:
				return nil, false
			}
		case "remote_pins":
			if len(v) < 2 || v[0] != '[' || len(bytes.TrimSpace(v[1:len(v)-1])) != 0 {
				return nil, false
			}
		default:
			return nil, false
		}
		if dst != nil {
			if len(v) < 2 || v[0] != '"' || !plainJSONString(string(v[1:len(v)-1])) {
				return nil, false
			}
			*dst = string(v[1 : len(v)-1])
		}
		seen++
	}
	if _, err := d.ReadToken(); err != nil || seen != 15 {
		return nil, false // a key missing (duplicates fail in the decoder)
	}
	if _, err := d.ReadValue(); err != io.EOF {
		return nil, false
	}
	out, err := canonicalRecord(dst, &r)
	return out, err == nil
}
