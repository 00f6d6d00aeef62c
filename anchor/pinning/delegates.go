package pinning

import (
	"fmt"
	"net/netip"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/ssid/ssid-anchor/anchor/addrclass"
	"github.com/ssid/ssid-anchor/anchor/servicetext"
)

// maxDelegates bounds how many of a service's delegates are dialed (the
// spec's own bound for origins is 20).
const maxDelegates = 20

// DelegatePolicy says which of a service's delegates (PinStatus.delegates,
// the peers that will fetch from us) this node may dial. A service is not
// trusted to say where our node connects: the air-gapped profile dials
// loopback only, the public profile no link-local address and no private
// one unless the service itself is on the private network.
type DelegatePolicy struct {
	// Profile names the node profile in messages ("air-gapped").
	Profile string
	// Address classes that may be dialed. Link-local, unspecified and
	// multicast addresses never are.
	Loopback, Private, Public bool
	// DNS allows /dns, /dns4, /dns6 and /dnsaddr names; a name may resolve
	// to any address, so only a policy that allows public addresses
	// should allow names.
	DNS bool
}

// AirGappedDelegates is the air-gapped profile's policy: loopback
// addresses only, no names.
func AirGappedDelegates() DelegatePolicy {
	return DelegatePolicy{Profile: "air-gapped", Loopback: true}
}

// PublicDelegates is the public profile's policy for a service at
// endpoint: public addresses and names; loopback and private addresses only
// when the service's own address is loopback or private (a Pinning
// Service API server on this host or this network hands out its local
// addresses).
func PublicDelegates(endpoint string) DelegatePolicy {
	p := DelegatePolicy{Profile: "public", Public: true, DNS: true}
	p.Loopback, p.Private = addrclass.Local(endpoint)
	return p
}

// Filter splits addrs into those the policy allows and the refused ones
// with the reason (at most maxDelegates are allowed; the rest are refused
// as too many).
func (p DelegatePolicy) Filter(addrs []string) (ok []string, refused []string) {
	for _, a := range addrs {
		if why := p.refuse(a); why != "" {
			refused = append(refused, why)
			continue
		}
		if len(ok) == maxDelegates {
			refused = append(refused, fmt.Sprintf("%s: more than %d delegates", short(a), maxDelegates))
			continue
		}
		ok = append(ok, a)
	}
	return ok, refused
}

func (p DelegatePolicy) refuse(s string) string {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return fmt.Sprintf("%s: not a multiaddr", short(s))
	}
	if _, err := m.ValueForProtocol(ma.P_P2P); err != nil {
		return fmt.Sprintf("%s: no /p2p/ peer ID", short(s))
	}
	comps := ma.Split(m)
	if len(comps) == 0 {
		return fmt.Sprintf("%s: empty", short(s))
	}
	first := comps[0]
	code := first.Protocol().Code
	profile := p.Profile
	if profile == "" {
		profile = "this"
	}
	switch code {
	case ma.P_IP4, ma.P_IP6:
		a, err := netip.ParseAddr(first.Value())
		if err != nil {
			return fmt.Sprintf("%s: bad address", short(s))
		}
		class := addrclass.Of(a)
		allowed := class == addrclass.Loopback && p.Loopback || class == addrclass.Private && p.Private || class == addrclass.Public && p.Public
		if !allowed {
			return fmt.Sprintf("%s: a %s address, which the %s profile does not dial", short(s), class, profile)
		}
		return ""
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
		if !p.DNS {
			return fmt.Sprintf("%s: a DNS name, which the %s profile does not resolve or dial", short(s), profile)
		}
		if _, literal := addrclass.OfHost(first.Value()); literal {
			return fmt.Sprintf("%s: a name for a local address", short(s))
		}
		return ""
	}
	return fmt.Sprintf("%s: a %s address, which is never dialed", short(s), first.Protocol().Name)
}

func short(s string) string { return servicetext.Clean(s, 120) }
