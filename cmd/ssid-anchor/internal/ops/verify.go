package ops

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/node"
)

// VerifyOptions are `verify`'s (and `anchor --verify`'s).
type VerifyOptions struct {
	Network      bool
	Gateways     []string
	Manifest     string
	CARs         []string
	AllowMissing bool
	Peers        []string
	Timeout      time.Duration
	// NoTree: only CARs and a manifest were carried in, no governance tree.
	NoTree bool
	// Trust are the peer IDs every manifest must be signed by (--trust);
	// empty is the config's anchor.trust.
	Trust []string
	// Sink takes the report's header and each record as it is settled, in
	// record order (the command prints them as they come).
	Sink anchor.RecordSink
	// TuneGC sets the collector for a streaming verify (setVerifyGC). GOGC
	// is process-wide: only a one-shot process sets it, never the daemon.
	TuneGC bool
}

// VerifyResult is what verify found.
type VerifyResult struct {
	Report *anchor.VerifyReport
	// CARs are the reports on the --car files, CARsOK whether each passed
	// (true without --car).
	CARs   []node.CARReport
	CARsOK bool
}

// Failed says what failed ("" when everything passed).
func (r *VerifyResult) Failed() string {
	rep := r.Report
	if rep.OK && r.CARsOK {
		return ""
	}
	var what []string
	if rep.Failed > 0 {
		what = append(what, fmt.Sprintf("%d of %d records failed", rep.Failed, rep.Total()))
	}
	if !rep.Chain.OK {
		what = append(what, "the manifest chain is broken")
	}
	if !rep.Signatures.OK {
		what = append(what, "a manifest signature failed")
	}
	if !r.CARsOK {
		what = append(what, "a CAR file is damaged or carries unvouched content")
	}
	return "verification failed: " + strings.Join(what, "; ")
}

// Verify checks every anchor of the manifest: file, re-derived CID,
// blocks, pins, the manifest chain and its signatures; from the repo (and
// peers or gateways) or from CAR files.
func Verify(ctx context.Context, e Env, o VerifyOptions) (*VerifyResult, error) {
	if len(o.CARs) > 0 && o.Network {
		return nil, Usagef("--network fetches through the repo's node; it cannot be combined with --car")
	}
	var remotes []anchor.Remote
	for _, u := range o.Gateways {
		gw, err := node.NewGateway(u, o.Timeout, "")
		if err != nil {
			return nil, Usagef("--gateway: %v", err)
		}
		remotes = append(remotes, gw)
	}
	vo := anchor.VerifyOptions{AllowMissing: o.AllowMissing, NoTree: o.NoTree, Log: e.log()}
	trust, err := trustedPeers(o.Trust, e.Config.Anchor.Trust)
	if err != nil {
		return nil, err
	}
	vo.Trust = trust
	if !o.NoTree {
		root, err := tree.OpenRoot(e.Root)
		if err != nil {
			return nil, Usagef("--root: %v", err)
		}
		defer root.Close()
		vo.Root = root
		TreeVerifyOptions(&vo, e.Config)
	}
	vo.ManifestPath = o.Manifest
	if vo.ManifestPath == "" {
		if o.NoTree {
			return nil, Usagef("--car without --root needs --manifest FILE (the manifest carried with the CARs)")
		}
		if err := tree.CheckRelative(e.Config.Paths.Manifest); err != nil {
			return nil, Usagef("paths.manifest: %v", err)
		}
		// TODO(h10b): Verify reads ManifestPath by path; load it with
		// anchor.LoadManifestIn(vo.Root, e.Config.Paths.Manifest) to confine it.
		vo.ManifestPath = vo.Root.Path(e.Config.Paths.Manifest)
	}

	var cars *node.CARSet
	if len(o.CARs) > 0 {
		var err error
		if cars, err = node.OpenCARs(o.CARs); err != nil {
			return nil, fmt.Errorf("--car: %w", err)
		}
		defer cars.Close()
		vo.Store, vo.StoreName = cars, "the CAR files"
	} else {
		n, release, err := e.open(ctx, node.OpenOptions{Online: o.Network, Peering: e.Config.Node.Peering})
		if err != nil {
			return nil, err
		}
		defer release()
		if err := RepoVerifyOptions(&vo, n); err != nil {
			return nil, err
		}
		if o.Network {
			if err := n.Connect(ctx, o.Peers); err != nil {
				return nil, fmt.Errorf("--peer: %w", err)
			}
			// Peering connects in the background; without any peer every
			// fetch would only run into its timeout.
			for wait := time.Now().Add(o.Timeout); n.ConnectedPeers() == 0 && time.Now().Before(wait); {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
			if n.ConnectedPeers() == 0 {
				return nil, fmt.Errorf("--network: no peer is connected; give --peer MULTIADDR (with /p2p/<id>) or set node.peering in the config")
			}
			f, err := n.Fetcher(o.Timeout)
			if err != nil {
				return nil, err
			}
			remotes = append([]anchor.Remote{f}, remotes...)
		}
	}
	vo.Remotes = remotes

	if o.TuneGC {
		defer setVerifyGC()()
	}
	// Results reach the sink as they are settled, in record order, so
	// memory does not grow with the number of records (anchor.Verify holds
	// a bounded window of them). With CARs, the records' CIDs are kept for
	// the CAR check.
	var known map[string]struct{}
	vo.Sink = o.Sink
	if cars != nil {
		known = map[string]struct{}{}
		vo.Sink = &cidCollector{next: o.Sink, known: known}
	}
	rep, err := anchor.Verify(ctx, vo)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Report: rep, CARsOK: true}
	if cars != nil {
		for _, c := range append([]string{rep.ManifestCID}, chainCIDs(rep)...) {
			if c, err := cid.Decode(c); err == nil {
				known[c.KeyString()] = struct{}{}
			}
		}
		res.CARs = cars.Reports(ctx, func(c cid.Cid) bool { _, ok := known[c.KeyString()]; return ok })
		for _, r := range res.CARs {
			res.CARsOK = res.CARsOK && r.OK
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// cidCollector keeps every record's CID on its way to the next sink: the
// CAR check asks which blocks the chain vouches for.
type cidCollector struct {
	next  anchor.RecordSink
	known map[string]struct{}
}

func (c *cidCollector) Begin(rep *anchor.VerifyReport) error {
	if c.next == nil {
		return nil
	}
	return c.next.Begin(rep)
}

func (c *cidCollector) Record(r anchor.RecordResult) error {
	if id, err := cid.Decode(r.IPFSCID); err == nil {
		c.known[id.KeyString()] = struct{}{}
	}
	if c.next == nil {
		return nil
	}
	return c.next.Record(r)
}

// trustedPeers is the signer verify requires: --trust replaces the
// config's anchor.trust (flags win over the file).
func trustedPeers(flag, config []string) ([]string, error) {
	if len(flag) == 0 {
		return config, nil
	}
	for _, p := range flag {
		if err := anchor.ValidatePeerID(p); err != nil {
			return nil, Usagef("--trust: %v; give the peer ID that `ssid-anchor init` prints on the anchoring box (12D3KooW...)", err)
		}
	}
	return flag, nil
}

// TreeVerifyOptions tells verify what the config says about the tree: the
// registry events log is append-only, and which files the rules select.
func TreeVerifyOptions(vo *anchor.VerifyOptions, cfg appconfig.Config) {
	vo.EventsLog = cfg.Paths.EventsLog
	if sel, err := anchor.NewSelector(vo.Root, cfg.Paths, cfg.Anchor.Rules); err == nil {
		vo.Selected = sel.Selects
	}
}

// RepoVerifyOptions verifies against the repo of n: its blocks, its pins
// and the chain head it committed.
func RepoVerifyOptions(vo *anchor.VerifyOptions, n *node.Node) error {
	vo.Store, vo.StoreName, vo.Pins = n, "the repo", n
	vo.ChainHeadFile = n.ChainHeadPath()
	var err error
	vo.ExpectHead, err = n.ChainHead()
	return err
}

// setVerifyGC tunes the collector for a one-shot verify and returns the
// undo. Verification streams: its live heap is the manifest, a few strings
// per record and the blocks in flight, but it turns over the whole anchor
// size in garbage, and at the default GOGC the collector takes a noticeable
// share of a core for nothing. GOGC 400 lets the heap grow to 5 times the
// live data between collections; the memory limit caps that growth for
// large manifests (the live data itself is bounded by streaming, see
// anchor.Verify: the limit only trades some collector time for memory, it
// does not bound anything that grows). GOGC is process-wide: inside the
// daemon, concurrent commands would undo each other's setting, so only a
// one-shot process changes it.
func setVerifyGC() func() {
	gc := debug.SetGCPercent(400)
	limit := debug.SetMemoryLimit(verifyMemoryLimit)
	return func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) }
}

// verifyMemoryLimit is the soft heap limit of a one-shot verify.
const verifyMemoryLimit = 96 << 20

// chainCIDs lists the CIDs of the manifests of the chain.
func chainCIDs(rep *anchor.VerifyReport) []string {
	out := make([]string, 0, len(rep.Chain.Manifests))
	for _, l := range rep.Chain.Manifests {
		out = append(out, l.CID)
	}
	return out
}
