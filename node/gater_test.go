package node

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	p2pconfig "github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// countingListener accepts TCP connections on addr, counts them and
// closes each one after counting: a dialer that got through has, by the
// time its handshake fails, been counted.
func countingListener(t *testing.T, addr string) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

func randomPeer(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// localNonLoopback is an address of this machine that is not loopback, if
// it has one.
func localNonLoopback() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP
		}
	}
	return nil
}

// TestAirGappedNodeDialsNothingBeyondLoopback is issue 25.3, the node's
// part: an air-gapped node asked to connect to a non-loopback address (what
// a pinning service's delegates named) refuses at its connection gater,
// before any socket; a DNS name is not even looked up. Loopback peers still
// connect. Main's air-gapped node dialed whatever it was given.
func TestAirGappedNodeDialsNothingBeyondLoopback(t *testing.T) {
	n := openOnline(t, RoutingNone)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	refused := func(target string, accepted *atomic.Int32) {
		t.Helper()
		full := target + "/p2p/" + randomPeer(t).String()
		err := n.Connect(ctx, []string{full})
		if err == nil {
			t.Fatalf("the air-gapped node connected to %s", full)
		}
		if accepted != nil && accepted.Load() != 0 {
			t.Fatalf("the air-gapped node dialed %s (%d connections reached the listener): %v", full, accepted.Load(), err)
		}
		t.Logf("%s: %v", target, err)
	}
	if ip := localNonLoopback(); ip != nil {
		// A listener of ours on this machine's own non-loopback address:
		// proof that nothing was dialed, not only an error.
		addr, accepted := countingListener(t, net.JoinHostPort(ip.String(), "0"))
		host, port, _ := net.SplitHostPort(addr)
		refused("/ip4/"+host+"/tcp/"+port, accepted)
		full := "/ip4/" + host + "/tcp/" + port + "/p2p/" + randomPeer(t).String()
		err := n.Connect(ctx, []string{full})
		if !errors.Is(err, swarm.ErrGaterDisallowedConnection) {
			t.Errorf("connect to %s: %v, want the gater's refusal", full, err)
		}
	} else {
		t.Log("no non-loopback address here: checking the gater's refusal of a TEST-NET address instead")
		full := "/ip4/192.0.2.1/tcp/4001/p2p/" + randomPeer(t).String()
		if err := n.Connect(ctx, []string{full}); !errors.Is(err, swarm.ErrGaterDisallowedConnection) {
			t.Errorf("connect to %s: %v, want the gater's refusal", full, err)
		}
	}
	// A name that resolves to loopback is not resolved: no DNS query, no
	// dial of the listener it would lead to.
	addr, accepted := countingListener(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(addr)
	refused("/dns4/localhost/tcp/"+port, accepted)

	// What the profile allows still works: a peer on loopback.
	other := openOnline(t, RoutingNone)
	if err := n.Connect(ctx, other.Addrs()); err != nil {
		t.Fatalf("connecting to an air-gapped peer on loopback: %v", err)
	}
}

// TestAirGappedGaterRule: loopback, and the IP addresses node.peering lists
// for that very peer; nothing else, names included.
func TestAirGappedGaterRule(t *testing.T) {
	friend, stranger := randomPeer(t), randomPeer(t)
	peering := []peer.AddrInfo{{ID: friend, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/10.1.2.3/tcp/4001"), ma.StringCast("/ip6/fd00::7/tcp/4001")}}}
	var cfg p2pconfig.Config
	if err := airGapped(peering)(&cfg); err != nil {
		t.Fatal(err)
	}
	g := cfg.ConnectionGater.(*airGappedGater)
	for _, tc := range []struct {
		p    peer.ID
		addr string
		ok   bool
	}{
		{stranger, "/ip4/127.0.0.1/tcp/4001", true},
		{stranger, "/ip6/::1/tcp/4001", true},
		{stranger, "/ip4/127.8.9.10/tcp/4001", true},
		{friend, "/ip4/10.1.2.3/tcp/5555", true},
		{friend, "/ip6/fd00::7/tcp/4001", true},
		{stranger, "/ip4/10.1.2.3/tcp/4001", false},
		{friend, "/ip4/10.1.2.4/tcp/4001", false},
		{stranger, "/ip4/8.8.8.8/tcp/4001", false},
		{stranger, "/ip4/192.168.1.10/tcp/4001", false},
		{stranger, "/ip6/2001:db8::1/tcp/4001", false},
		{stranger, "/dns4/localhost/tcp/4001", false},
		{friend, "/dns4/example.org/tcp/4001", false},
	} {
		if got := g.InterceptAddrDial(tc.p, ma.StringCast(tc.addr)); got != tc.ok {
			who := "stranger"
			if tc.p == friend {
				who = "peering peer"
			}
			t.Errorf("%s at %s: allowed %v, want %v", who, tc.addr, got, tc.ok)
		}
	}
	if _, err := (noDNS{}).ResolveDNSComponent(context.Background(), ma.StringCast("/dns4/localhost/tcp/1"), 1); err == nil || !strings.Contains(err.Error(), "air-gapped") {
		t.Errorf("the air-gapped resolver answered: %v", err)
	}
}
