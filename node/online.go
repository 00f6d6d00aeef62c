package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/kubo/core/coreiface/options"
	mh "github.com/multiformats/go-multihash"
)

// Routers an online node can run with (OpenOptions.Routing).
const (
	// RoutingAuto picks the router from the repo's profile: a DHT client
	// on the public profile, none on the air-gapped one.
	RoutingAuto = ""
	// RoutingNone runs no content router: peers are reached only through
	// peering or explicit connects, and nothing is announced.
	RoutingNone = "none"
	// RoutingDHTClient queries the DHT without serving it.
	RoutingDHTClient = "dhtclient"
	// RoutingDHTServer joins the DHT as a server. It is what a private
	// network of governance boxes (peering on loopback or a LAN) needs for
	// providers and IPNS to be found without the public network.
	RoutingDHTServer = "dhtserver"
)

// ErrNoRouting means the node runs without a content router, so there is no
// one to announce content or IPNS records to.
var ErrNoRouting = errors.New("the node runs without a content router (air-gapped profile)")

// Profile is the profile the repo was created with.
func (n *Node) Profile() string { return n.profile }

// Routing is the router the node runs with: RoutingNone when offline.
func (n *Node) Routing() string {
	if !n.online {
		return RoutingNone
	}
	return n.routing
}

// Online says whether libp2p runs.
func (n *Node) Online() bool { return n.online }

// GatewayHandler serves /ipfs/<cid> (files, directories, raw blocks and
// trustless CARs) from the local blockstore only: it never fetches a block
// from the network, so it shows exactly what this node holds. Mount it at
// "/ipfs/". It is built like kubo's own gateway with Gateway.NoFetch, on
// boxo/gateway.
func (n *Node) GatewayHandler() http.Handler {
	n.gwOnce.Do(func() {
		bs := n.ipfs.Blocks.Blockstore()
		bserv := blockservice.New(bs, offline.Exchange(bs))
		backend, err := gateway.NewBlocksBackend(bserv, gateway.WithResolver(n.ipfs.OfflineUnixFSPathResolver))
		if err != nil {
			n.gwErr = fmt.Errorf("gateway backend: %w", err)
			return
		}
		n.gw = gateway.NewHandler(gateway.Config{
			DeserializedResponses: true,
			NoDNSLink:             true,
			DisableHTMLErrors:     true,
			// Content is local: a missing block is a 404 at once, never a wait.
			RetrievalTimeout:      5 * time.Second,
			MaxConcurrentRequests: 4096,
		}, backend)
	})
	if n.gwErr != nil {
		err := n.gwErr
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		})
	}
	return n.gw
}

// ProvideStats describes what this process announced.
type ProvideStats struct {
	// Strategy is the repo's Provide.Strategy ("pinned").
	Strategy string `json:"strategy"`
	// Routing is the router announcements go to.
	Routing string `json:"routing"`
	// Provided counts CIDs queued for announcement by Provide since start.
	Provided int `json:"provided"`
	// LastProvide is when Provide last queued something.
	LastProvide time.Time `json:"last_provide,omitzero"`
	// Err is the last error from the provider, if any.
	Err string `json:"error,omitempty"`
}

// provideState is guarded by its mutex; Provide may run from several jobs.
type provideState struct {
	mu    sync.Mutex
	stats ProvideStats
}

// Provide queues cids for announcement now and for reproviding afterwards
// (kubo's provider reprovides pinned content on its own schedule; this only
// makes a fresh anchor findable without waiting for that cycle). On a node
// without a router it does nothing and returns nil: there is no one to tell.
func (n *Node) Provide(ctx context.Context, cids ...string) error {
	if !n.online || n.routing == RoutingNone || n.ipfs.Provider == nil {
		return nil
	}
	keys := make([]mh.Multihash, 0, len(cids))
	for _, s := range cids {
		c, err := cid.Decode(s)
		if err != nil {
			return fmt.Errorf("provide %q: %w", s, err)
		}
		keys = append(keys, c.Hash())
	}
	err := n.ipfs.Provider.StartProviding(true, keys...)
	n.provide.mu.Lock()
	defer n.provide.mu.Unlock()
	if err != nil {
		n.provide.stats.Err = err.Error()
		return fmt.Errorf("provide: %w", err)
	}
	n.provide.stats.Err = ""
	n.provide.stats.Provided += len(keys)
	n.provide.stats.LastProvide = time.Now().UTC()
	return nil
}

// ProvideStats reports what Provide did in this process.
func (n *Node) ProvideStats() ProvideStats {
	n.provide.mu.Lock()
	s := n.provide.stats
	n.provide.mu.Unlock()
	s.Routing = n.Routing()
	if cfg, err := n.ipfs.Repo.Config(); err == nil {
		s.Strategy = cfg.Provide.Strategy.WithDefault("all")
	}
	return s
}

// IPNSName is the /ipns/ path of the node key (its peer ID as a libp2p-key
// CID), under which PublishIPNS names the newest manifest.
func (n *Node) IPNSName() string {
	return "/ipns/" + ipns.NameFromPeer(n.ipfs.Identity).String()
}

// PublishIPNS points the node's IPNS name at c (the newest manifest) and
// returns the name. It needs a router to publish to: on a node without one
// it fails with ErrNoRouting.
func (n *Node) PublishIPNS(ctx context.Context, c string) (string, error) {
	if !n.online || n.routing == RoutingNone {
		return "", ErrNoRouting
	}
	id, err := cid.Decode(c)
	if err != nil {
		return "", fmt.Errorf("publish %q: %w", c, err)
	}
	name, err := n.api.Name().Publish(ctx, path.FromCid(id), options.Name.ValidTime(48*time.Hour), options.Name.TTL(5*time.Minute))
	if err != nil {
		return "", fmt.Errorf("publishing %s under %s: %w", c, n.IPNSName(), err)
	}
	return "/ipns/" + name.String(), nil
}

// ResolveIPNS resolves an /ipns/ name (another node's or ours) through the
// router, without a cache, to the CID it names.
func (n *Node) ResolveIPNS(ctx context.Context, name string) (string, error) {
	if !n.online || n.routing == RoutingNone {
		return "", ErrNoRouting
	}
	p, err := path.NewPath(name)
	if err != nil {
		return "", fmt.Errorf("resolving %q: %w", name, err)
	}
	res, err := n.api.Name().Resolve(ctx, p.String(), options.Name.Cache(false))
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", name, err)
	}
	ip, err := path.NewImmutablePath(res)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %s is not an immutable path", name, res)
	}
	return ip.RootCid().String(), nil
}

// FindProviders asks the router for up to max peers that provide c.
func (n *Node) FindProviders(ctx context.Context, c string, max int) ([]string, error) {
	if !n.online || n.routing == RoutingNone {
		return nil, ErrNoRouting
	}
	id, err := cid.Decode(c)
	if err != nil {
		return nil, fmt.Errorf("find providers %q: %w", c, err)
	}
	var out []string
	for ai := range n.ipfs.Routing.FindProvidersAsync(ctx, id, max) {
		out = append(out, ai.ID.String())
	}
	return out, ctx.Err()
}
