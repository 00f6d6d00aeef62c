package appconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/xrash/smetrics"
)

// unknownKey is a key of the file that the config has no field for: its
// full path (anchor.gateway_bsae, remote_pinning.services[0].token), where
// it is, and the key the user most likely meant.
type unknownKey struct {
	path, suggestion string
	off              int64
}

func (u unknownKey) String() string {
	s := fmt.Sprintf("unknown key %q", u.path)
	if u.suggestion != "" {
		return s + fmt.Sprintf("; did you mean %q?", u.suggestion)
	}
	return s + " (remove it or fix its spelling; `ssid-anchor config show` lists every key)"
}

// findUnknownKey walks the document b beside the type t and returns the
// first key t has no field for. encoding/json's DisallowUnknownFields says
// only `unknown field "gateway_bsae"`, without the section it is in or
// where: this walk (the decoder's tokens, with a type stack that encoding/json
// does not expose) is hand-written because no library reports both.
// b must be valid JSON (the strict decode has said so).
func findUnknownKey(b []byte, t reflect.Type) (unknownKey, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	u, found, err := walkValue(dec, b, t, t, "")
	if err != nil {
		return unknownKey{}, false
	}
	return u, found
}

func walkValue(dec *json.Decoder, b []byte, root, t reflect.Type, path string) (unknownKey, bool, error) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return unknownKey{}, false, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return unknownKey{}, false, nil
	}
	switch d {
	case '{':
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return unknownKey{}, false, err
			}
			key, _ := kt.(string)
			end := dec.InputOffset()
			kpath := key
			if path != "" {
				kpath = path + "." + key
			}
			var ft reflect.Type
			switch {
			case t == nil:
			case t.Kind() == reflect.Struct:
				names := fieldNames(t)
				f, ok := matchField(names, key)
				if !ok {
					start := bytes.LastIndexByte(b[:end-1], '"')
					return unknownKey{path: kpath, suggestion: suggest(root, path, key, names), off: int64(start)}, true, nil
				}
				ft = f
			case t.Kind() == reflect.Map:
				ft = t.Elem()
			}
			if u, found, err := walkValue(dec, b, root, ft, kpath); err != nil || found {
				return u, found, err
			}
		}
	case '[':
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if u, found, err := walkValue(dec, b, root, et, path+"["+strconv.Itoa(i)+"]"); err != nil || found {
				return u, found, err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return unknownKey{}, false, err
}

// fieldNames maps each JSON key of struct t to its field's type.
func fieldNames(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	return m
}

// matchField finds key as encoding/json does: exactly, then ignoring case.
func matchField(names map[string]reflect.Type, key string) (reflect.Type, bool) {
	if t, ok := names[key]; ok {
		return t, true
	}
	for n, t := range names {
		if strings.EqualFold(n, key) {
			return t, true
		}
	}
	return nil, false
}

// suggest names the key the user probably meant: a sibling spelled
// alike, else the same key in another section (gateway_base put at the
// top instead of under anchor).
func suggest(root reflect.Type, path, key string, siblings map[string]reflect.Type) string {
	best, score := "", 0.0
	for n := range siblings {
		// urfave/cli's own "did you mean" measure and threshold.
		if s := smetrics.JaroWinkler(strings.ToLower(key), n, 0.7, 4); s > score || (s == score && n < best) {
			best, score = n, s
		}
	}
	if score >= 0.8 {
		if path == "" {
			return best
		}
		return path + "." + best
	}
	for _, p := range KeyPaths(root) {
		if p == key || strings.HasSuffix(p, "."+key) {
			return p
		}
	}
	return ""
}

// KeyPaths lists every key path of struct type t (sections and leaves;
// list elements as name[]), in field order.
func KeyPaths(t reflect.Type) []string {
	var out []string
	var walk func(t reflect.Type, prefix string, depth int)
	walk = func(t reflect.Type, prefix string, depth int) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
			if prefix != "" && !strings.HasSuffix(prefix, "[]") {
				prefix += "[]"
			}
		}
		if t.Kind() != reflect.Struct || depth > 6 {
			return
		}
		for _, f := range reflect.VisibleFields(t) {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || f.Anonymous || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			p := name
			if prefix != "" {
				p = prefix + "." + name
			}
			out = append(out, p)
			walk(f.Type, p, depth+1)
		}
	}
	walk(t, "", 0)
	return out
}

// position is "line L, column C" of byte offset off in b (columns count
// characters, from 1).
func position(b []byte, off int64) string {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	if off < 0 {
		off = 0
	}
	line := bytes.Count(b[:off], []byte("\n")) + 1
	col := utf8.RuneCount(b[bytes.LastIndexByte(b[:off], '\n')+1:off]) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

// reflectConfig is the type the file decodes into.
func reflectConfig() reflect.Type { return reflect.TypeFor[Config]() }

// keyOffset finds where the key field (encoding/json's dotted Field of a
// type error, which leaves out list indices) starts in b, so a wrong type
// is placed at its key, not after its value.
func keyOffset(b []byte, field string) (int64, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var find func(path string) (int64, bool, error)
	find = func(path string) (int64, bool, error) {
		tok, err := dec.Token()
		if err != nil {
			return 0, false, err
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return 0, false, nil
		}
		for dec.More() {
			p := path
			if d == '{' {
				kt, err := dec.Token()
				if err != nil {
					return 0, false, err
				}
				key, _ := kt.(string)
				if p != "" {
					p += "."
				}
				p += key
				if p == field {
					end := dec.InputOffset()
					return int64(bytes.LastIndexByte(b[:end-1], '"')), true, nil
				}
			}
			if off, found, err := find(p); err != nil || found {
				return off, found, err
			}
		}
		_, err = dec.Token()
		return 0, false, err
	}
	off, found, err := find("")
	return off, found && err == nil
}
