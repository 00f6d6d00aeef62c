package anchor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf16"

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
