package node

import (
	"context"
	"errors"
	"net"
	"slices"

	p2pconfig "github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// airGapped is the libp2p option that holds an air-gapped node to its
// promise (it never dials a public address) at the one place every dial
// passes: the swarm. Its profile keeps kubo from dialing bootstrap peers,
// relays or DHT peers, but code can still be handed an address: a pinning
// service's delegates, `swarm connect` over the RPC API, a peer record.
// So the node's connection gater lets a dial through only to a loopback
// address, or to an IP address that node.peering lists for that very peer,
// and its DNS resolver answers nothing, so no name is looked up either.
// The option wraps the gater kubo installs (Swarm.AddrFilters): both must
// allow a dial.
func airGapped(peering []peer.AddrInfo) p2pconfig.Option {
	allowed := map[peer.ID][]net.IP{}
	for _, ai := range peering {
		for _, a := range ai.Addrs {
			if ip, err := manet.ToIP(a); err == nil {
				allowed[ai.ID] = append(allowed[ai.ID], ip)
			}
		}
	}
	return func(cfg *p2pconfig.Config) error {
		cfg.ConnectionGater = &airGappedGater{next: cfg.ConnectionGater, allowed: allowed}
		cfg.MultiaddrResolver = noDNS{}
		return nil
	}
}

type airGappedGater struct {
	next    connmgr.ConnectionGater // kubo's, may be nil
	allowed map[peer.ID][]net.IP
}

var _ connmgr.ConnectionGater = (*airGappedGater)(nil)

// allowedAddr is the dial rule of the air-gapped profile.
func (g *airGappedGater) allowedAddr(p peer.ID, a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	if err != nil {
		return false // a name, a relay circuit, anything not an IP address
	}
	return ip.IsLoopback() || slices.ContainsFunc(g.allowed[p], ip.Equal)
}

func (g *airGappedGater) InterceptPeerDial(p peer.ID) bool {
	return g.next == nil || g.next.InterceptPeerDial(p)
}

func (g *airGappedGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return g.allowedAddr(p, a) && (g.next == nil || g.next.InterceptAddrDial(p, a))
}

func (g *airGappedGater) InterceptAccept(c network.ConnMultiaddrs) bool {
	return g.next == nil || g.next.InterceptAccept(c)
}

func (g *airGappedGater) InterceptSecured(d network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return g.next == nil || g.next.InterceptSecured(d, p, c)
}

func (g *airGappedGater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	if g.next == nil {
		return true, 0
	}
	return g.next.InterceptUpgraded(c)
}

// errNoDNS is what an air-gapped node's resolver answers every name with.
var errNoDNS = errors.New("the air-gapped profile resolves no DNS names (give node.peering addresses as /ip4 or /ip6)")

// noDNS is the air-gapped node's multiaddr resolver: it looks nothing up,
// so no DNS query leaves the box on behalf of a dial.
type noDNS struct{}

func (noDNS) ResolveDNSAddr(context.Context, peer.ID, ma.Multiaddr, int, int) ([]ma.Multiaddr, error) {
	return nil, errNoDNS
}

func (noDNS) ResolveDNSComponent(context.Context, ma.Multiaddr, int) ([]ma.Multiaddr, error) {
	return nil, errNoDNS
}
