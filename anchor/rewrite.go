package anchor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrUnchanged, returned by a Rewrite edit, means the manifest already
// says everything: nothing is written and Rewritten stays false.
var ErrUnchanged = errors.New("manifest unchanged")

// Rewrite changes the manifest outside an anchoring run (a remote pin's
// status, for example). It takes the path every anchoring run takes: under
// the manifest lock it applies edit, adds the previous manifest and the new
// one to the node and pins them, signs the new one with o.Signer and only
// then replaces the file atomically. So the hash chain and the signature
// hold for every writer; there is no way to write a manifest around them.
// o needs Root, Paths, OpenBatch and Signer; Now, Provider and Log are
// optional.
func Rewrite(ctx context.Context, o RunOptions, edit func(*Manifest) error) (*Result, error) {
	if o.OpenBatch == nil {
		return nil, errors.New("rewriting the manifest: no node to store it in (RunOptions.OpenBatch)")
	}
	if o.Signer == nil {
		return nil, fmt.Errorf("rewriting the manifest: %w", errNoSigner)
	}
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	unlock, err := lockManifest(o)
	if err != nil {
		return nil, err
	}
	defer unlock()
	man, oldBytes, err := LoadManifestIn(o.Root, o.Paths.Manifest)
	if err != nil {
		return nil, err
	}
	res := &Result{ManifestPath: o.Paths.Manifest}
	if err := edit(man); errors.Is(err, ErrUnchanged) {
		return res, nil
	} else if err != nil {
		return nil, err
	}
	run, err := newRunState(o, man, oldBytes, res)
	if err != nil {
		return nil, err
	}
	if err := run.open(ctx); err != nil {
		return nil, err
	}
	defer run.abort()
	mark := man.Processed
	if err := run.commit(ctx, &mark); err != nil {
		return nil, err
	}
	return res, nil
}
