package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/ipfs/kubo/config"
	"github.com/ipfs/kubo/core"
	"github.com/ipfs/kubo/core/coreapi"
	coreiface "github.com/ipfs/kubo/core/coreiface"
	"github.com/ipfs/kubo/core/node/libp2p"
	"github.com/ipfs/kubo/repo/fsrepo"
	golibp2p "github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// Node is an open kubo node. Close it to release the repo lock.
type Node struct {
	ipfs     *core.IpfsNode
	api      coreiface.CoreAPI
	repoPath string
	online   bool
	profile  string
	routing  string
	cancel   context.CancelFunc

	gwOnce  sync.Once
	gw      http.Handler
	gwErr   error
	provide provideState
	pins    *guardedPinner
}

// OpenOptions choose how the node runs.
type OpenOptions struct {
	// Online starts libp2p; one-shot commands leave it false.
	Online bool
	// Swarm overrides the repo's listen addresses for this run.
	Swarm []string
	// Peering adds peers to stay connected to (full multiaddrs with /p2p/).
	Peering []string
	// Routing overrides the router the profile picks (RoutingAuto): one of
	// RoutingNone, RoutingDHTClient, RoutingDHTServer. Only for Online.
	Routing string
}

// Open opens the repo at repoPath. It fails with ErrNotInitialized when there
// is no repo and ErrLocked when another process holds it.
func Open(ctx context.Context, repoPath string, o OpenOptions) (*Node, error) {
	if err := loadPlugins(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(repoPath)
	if err != nil {
		return nil, fmt.Errorf("repo path %q: %w", repoPath, err)
	}
	if err := checkAccess(abs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if !fsrepo.IsInitialized(abs) {
		return nil, fmt.Errorf("%w: %s", ErrNotInitialized, abs)
	}
	r, err := fsrepo.Open(abs)
	if err != nil {
		return nil, classifyOpenError(abs, err)
	}
	profile := repoProfile(abs)
	cfg, err := r.Config()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("reading repo config: %w", err)
	}
	// Overrides apply to this process only; the config on disk is unchanged.
	if !o.Online {
		// A one-shot command stores or reads each block once: kubo's cache
		// of 64k block keys (4 MB at 16,500 blocks) saves it no lookup.
		// Only this process's memory changes; blocks and CIDs do not.
		cfg.Datastore.BlockKeyCacheSize = *config.NewOptionalInteger(0)
	}
	if len(o.Swarm) > 0 {
		cfg.Addresses.Swarm = append([]string(nil), o.Swarm...)
	}
	for i, a := range o.Peering {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("node.peering[%d]: %w", i, err)
		}
		cfg.Peering.Peers = append(cfg.Peering.Peers, *ai)
	}
	bc := &core.BuildCfg{Online: o.Online, Permanent: true, Repo: r}
	if o.Online && profile == ProfileAirGapped {
		peering := append([]peer.AddrInfo(nil), cfg.Peering.Peers...)
		bc.Host = func(id peer.ID, ps peerstore.Peerstore, opts ...golibp2p.Option) (host.Host, error) {
			return libp2p.DefaultHostOption(id, ps, append(opts, airGapped(peering))...)
		}
	}
	routing := RoutingNone
	if o.Online {
		// Routing.Type is read only by kubo's daemon, so the router is chosen here.
		routing = o.Routing
		if routing == RoutingAuto {
			routing = RoutingNone
			if profile == ProfilePublic {
				routing = RoutingDHTClient
			}
		}
		switch routing {
		case RoutingNone:
			bc.Routing = libp2p.NilRouterOption
		case RoutingDHTClient:
			bc.Routing = libp2p.DHTClientOption
		case RoutingDHTServer:
			bc.Routing = libp2p.DHTServerOption
		default:
			r.Close()
			return nil, fmt.Errorf("routing %q: must be %q, %q or %q", routing, RoutingNone, RoutingDHTClient, RoutingDHTServer)
		}
	}
	// The node lives as long as this context, not the caller's request.
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n, err := core.NewNode(nctx, bc)
	if err != nil {
		cancel()
		r.Close()
		return nil, fmt.Errorf("starting node: %w", err)
	}
	// Before anything can use the node: every pin removal goes through
	// the guard (SetPinGuard).
	pins := &guardedPinner{Pinner: n.Pinning, bs: n.Blockstore}
	n.Pinning = pins
	api, err := coreapi.NewCoreAPI(n)
	if err != nil {
		n.Close()
		cancel()
		return nil, fmt.Errorf("core api: %w", err)
	}
	return &Node{ipfs: n, api: api, repoPath: abs, online: o.Online, profile: profile, routing: routing, cancel: cancel, pins: pins}, nil
}

// Close stops the node and releases the repo lock.
func (n *Node) Close() error {
	err := n.ipfs.Close()
	n.cancel()
	return err
}

// PeerID is the node's identity.
func (n *Node) PeerID() string { return n.ipfs.Identity.String() }

// RepoPath is the absolute repo path.
func (n *Node) RepoPath() string { return n.repoPath }

// Addrs lists the full multiaddrs (with /p2p/<id>) the node listens on; empty
// when offline.
func (n *Node) Addrs() []string {
	if !n.online || n.ipfs.PeerHost == nil {
		return nil
	}
	id := n.ipfs.Identity.String()
	var out []string
	for _, a := range n.ipfs.PeerHost.Addrs() {
		out = append(out, a.String()+"/p2p/"+id)
	}
	return out
}

// API exposes kubo's CoreAPI for the parts of this package that need it.
func (n *Node) API() coreiface.CoreAPI { return n.api }

func (n *Node) blocksDir() string { return filepath.Join(n.repoPath, "blocks") }
