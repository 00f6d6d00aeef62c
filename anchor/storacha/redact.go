package storacha

import (
	"bytes"
	"fmt"
	"net/url"

	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/node/basicnode"
)

// withoutCredentials re-encodes a store/add receipt {p, s} with the query
// and path of p.out.ok.url dropped and the values of p.out.ok.headers replaced: both
// let whoever holds them PUT into the space until they expire, and the
// queue and the batch state are kept on disk. It returns what it took out.
func withoutCredentials(n datamodel.Node) ([]byte, []string, error) {
	pKey := "p"
	if _, err := n.LookupByString("p"); err != nil {
		pKey = "data"
	}
	var redacted []string
	out, err := replaceAt(n, []string{pKey, "out", "ok", "url"}, func(v datamodel.Node) (datamodel.Node, error) {
		s, err := v.AsString()
		if err != nil {
			return nil, err
		}
		// Only the origin stays: the query holds the signature, and a
		// deployment may put its upload token in the path.
		clean := "(unparseable URL)"
		if u, err := url.Parse(s); err == nil {
			clean = u.Scheme + "://" + u.Host + "/…"
		}
		if clean != s {
			redacted = append(redacted, "the upload url's path and query")
			return basicnode.NewString(clean), nil
		}
		return v, nil
	})
	if err != nil {
		return nil, nil, err
	}
	out, err = replaceAt(out, []string{pKey, "out", "ok", "headers"}, func(v datamodel.Node) (datamodel.Node, error) {
		if v.Kind() != datamodel.Kind_Map || v.Length() == 0 {
			return v, nil
		}
		redacted = append(redacted, "the upload headers' values")
		nb := basicnode.Prototype.Map.NewBuilder()
		ma, err := nb.BeginMap(v.Length())
		if err != nil {
			return nil, err
		}
		it := v.MapIterator()
		for !it.Done() {
			k, _, err := it.Next()
			if err != nil {
				return nil, err
			}
			if err := ma.AssembleKey().AssignNode(k); err != nil {
				return nil, err
			}
			if err := ma.AssembleValue().AssignString("[redacted]"); err != nil {
				return nil, err
			}
		}
		if err := ma.Finish(); err != nil {
			return nil, err
		}
		return nb.Build(), nil
	})
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := dagjson.Encode(out, &buf); err != nil {
		return nil, nil, fmt.Errorf("re-encoding: %w", err)
	}
	return buf.Bytes(), redacted, nil
}

// replaceAt rebuilds n with the value at path (map keys) replaced by fn's
// result; n is returned as it is when the path does not exist.
func replaceAt(n datamodel.Node, path []string, fn func(datamodel.Node) (datamodel.Node, error)) (datamodel.Node, error) {
	if len(path) == 0 {
		return fn(n)
	}
	if n.Kind() != datamodel.Kind_Map {
		return n, nil
	}
	if _, err := n.LookupByString(path[0]); err != nil {
		return n, nil
	}
	nb := basicnode.Prototype.Map.NewBuilder()
	ma, err := nb.BeginMap(n.Length())
	if err != nil {
		return nil, err
	}
	it := n.MapIterator()
	for !it.Done() {
		k, v, err := it.Next()
		if err != nil {
			return nil, err
		}
		if ks, _ := k.AsString(); ks == path[0] {
			if v, err = replaceAt(v, path[1:], fn); err != nil {
				return nil, err
			}
		}
		if err := ma.AssembleKey().AssignNode(k); err != nil {
			return nil, err
		}
		if err := ma.AssembleValue().AssignNode(v); err != nil {
			return nil, err
		}
	}
	if err := ma.Finish(); err != nil {
		return nil, err
	}
	return nb.Build(), nil
}
