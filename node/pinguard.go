package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/ipfs/boxo/blockservice"
	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/ipld/merkledag"
	pin "github.com/ipfs/boxo/pinning/pinner"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// PinGuard names what must stay pinned.
type PinGuard struct {
	// Protected returns CIDs (as strings) with what each one is, for the
	// error that refuses to unpin it ("record 05_documentation/…zip,
	// anchored 2026-…"). The set must not change until release is called:
	// an unpin that passed the check happens before that.
	Protected func(ctx context.Context) (protected map[string]string, release func(), err error)
	// Hint ends a refusal: what the user can do instead.
	Hint string
}

// ErrPinProtected is wrapped by the error that refuses to remove a pin
// because protected content would lose its last pin.
var ErrPinProtected = errors.New("the pin holds protected content")

// SetPinGuard makes every removal of a pin on this node (kubo's `pin rm`
// and `pin update --unpin`, through the RPC API) ask g first: a removal
// after which a protected CID would be pinned neither directly,
// recursively nor under another recursive pin is refused, because the
// next `repo gc` would delete it. Adding pins and everything else pass
// through. Without a guard nothing is checked.
func (n *Node) SetPinGuard(g PinGuard) { n.pins.guard.Store(&g) }

// guardedPinner is kubo's pinner with removals checked against the guard.
// Open puts it in the node before anything else can use the node, so kubo's
// commands (through the CoreAPI they build from the node) and GC see it.
type guardedPinner struct {
	pin.Pinner
	bs    bstore.Blockstore
	guard atomic.Pointer[PinGuard]
}

func (p *guardedPinner) Unpin(ctx context.Context, c cid.Cid, recursive bool) error {
	release, err := p.allow(ctx, c, recursive, cid.Undef)
	if err != nil {
		return err
	}
	defer release()
	return p.Pinner.Unpin(ctx, c, recursive)
}

func (p *guardedPinner) Update(ctx context.Context, from, to cid.Cid, unpin bool) error {
	if !unpin {
		return p.Pinner.Update(ctx, from, to, unpin)
	}
	release, err := p.allow(ctx, from, true, to)
	if err != nil {
		return err
	}
	defer release()
	return p.Pinner.Update(ctx, from, to, unpin)
}

// allow checks the removal of c's pin (recursive or direct; kept is a root
// pinned recursively in its place, or cid.Undef) and, when nothing
// protected would be lost, returns with the guard's set still held.
func (p *guardedPinner) allow(ctx context.Context, c cid.Cid, recursive bool, kept cid.Cid) (func(), error) {
	g := p.guard.Load()
	if g == nil {
		return func() {}, nil
	}
	prot, release, err := g.Protected(ctx)
	if err != nil {
		return nil, fmt.Errorf("unpin %s: cannot tell whether it holds anchored content, so it stays pinned: %w", c, err)
	}
	byHash := make(map[string]protectedCID, len(prot))
	for s, what := range prot {
		pc, err := cid.Decode(s)
		if err != nil {
			release()
			return nil, fmt.Errorf("unpin %s: the protected set names %q, which is not a CID", c, s)
		}
		k := string(pc.Hash())
		if prev, ok := byHash[k]; ok {
			what = prev.what + "; " + what
		}
		byHash[k] = protectedCID{c: pc, what: what}
	}
	lost, err := p.lostBy(ctx, byHash, c, recursive, kept)
	if err != nil {
		release()
		return nil, fmt.Errorf("unpin %s: cannot tell whether it holds anchored content, so it stays pinned: %w", c, err)
	}
	if len(lost) > 0 {
		release()
		msg := fmt.Sprintf("refusing to unpin %s: %v: %s", c, ErrPinProtected, describeLost(lost))
		if g.Hint != "" {
			msg += "; " + g.Hint
		}
		return nil, pinProtectedError(msg)
	}
	return release, nil
}

// pinProtectedError is a refusal: its text is the whole message (it reaches
// the user through kubo's RPC API as it is) and it matches ErrPinProtected.
type pinProtectedError string

func (e pinProtectedError) Error() string        { return string(e) }
func (e pinProtectedError) Is(target error) bool { return target == ErrPinProtected }

type protectedCID struct {
	c    cid.Cid
	what string
}

// lostBy returns the protected CIDs that the removal would leave with no
// pin: those under the removed pin (a walk of its DAG that stops at
// protected nodes: below one, everything goes or stays with it) that no
// other direct pin names and no other recursive pin's DAG reaches.
func (p *guardedPinner) lostBy(ctx context.Context, prot map[string]protectedCID, c cid.Cid, recursive bool, kept cid.Cid) ([]protectedCID, error) {
	// Offline: a pinned DAG is stored whole, and a check must never wait
	// for the network.
	dag := merkledag.NewDAGService(blockservice.New(p.bs, offline.Exchange(p.bs)))
	affected := map[string]protectedCID{}
	if !recursive {
		if pc, ok := prot[string(c.Hash())]; ok {
			affected[string(c.Hash())] = pc
		}
	} else {
		err := walkToProtected(ctx, dag, c, prot, func(k string) bool {
			affected[k] = prot[k]
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("walking the pinned DAG: %w", err)
		}
	}
	if len(affected) == 0 {
		return nil, nil
	}

	for sp := range p.Pinner.DirectKeys(ctx, false) {
		if sp.Err != nil {
			return nil, fmt.Errorf("listing direct pins: %w", sp.Err)
		}
		if !recursive && sp.Pin.Key.Equals(c) {
			continue
		}
		delete(affected, string(sp.Pin.Key.Hash()))
	}
	var roots []cid.Cid
	if kept.Defined() {
		roots = append(roots, kept)
	}
	for sp := range p.Pinner.RecursiveKeys(ctx, false) {
		if sp.Err != nil {
			return nil, fmt.Errorf("listing recursive pins: %w", sp.Err)
		}
		if recursive && sp.Pin.Key.Equals(c) {
			continue
		}
		roots = append(roots, sp.Pin.Key)
	}
	for _, r := range roots {
		if len(affected) == 0 {
			break
		}
		// A DAG that cannot be walked whole covers only what was reached
		// before the gap: the check stays on the safe side.
		walkToProtected(ctx, dag, r, prot, func(k string) bool {
			delete(affected, k)
			return len(affected) > 0
		})
	}
	out := make([]protectedCID, 0, len(affected))
	for _, pc := range affected {
		out = append(out, pc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].what < out[j].what })
	return out, nil
}

// walkToProtected walks root's DAG, calling found for each protected node
// and not descending below it; found returns false to stop the walk.
func walkToProtected(ctx context.Context, dag ipld.NodeGetter, root cid.Cid, prot map[string]protectedCID, found func(key string) bool) error {
	seen := cid.NewSet()
	stop := false
	return merkledag.Walk(ctx, merkledag.GetLinksDirect(dag), root, func(c cid.Cid) bool {
		if stop || !seen.Visit(c) {
			return false
		}
		if _, ok := prot[string(c.Hash())]; ok {
			stop = !found(string(c.Hash()))
			return false
		}
		return true
	})
}

// describeLost names up to five of the lost CIDs.
func describeLost(lost []protectedCID) string {
	const show = 5
	var parts []string
	for i, pc := range lost {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(lost)-show))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", pc.c, pc.what))
	}
	noun := "it"
	if len(lost) > 1 {
		noun = "they"
	}
	return fmt.Sprintf("it is the last pin of %s; %s would be deleted by the next repo gc", strings.Join(parts, ", "), noun)
}
