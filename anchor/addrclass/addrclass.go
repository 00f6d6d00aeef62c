// Package addrclass names the class of an IP address (loopback, private,
// link-local, public) so the remote-pinning clients can decide what a
// remote service may make this node dial: a pinning service's delegates,
// a bridge's upload URL. net/netip answers each question on its own; this
// package puts the answers in one order, so every caller draws the same
// line (link-local, which holds cloud metadata services, is never dialed).
package addrclass

import (
	"net/netip"
	"net/url"
	"strings"
)

// Class is an address class.
type Class string

// The classes, from most to least local.
const (
	Loopback Class = "loopback"
	// LinkLocal holds 169.254.169.254 and the other metadata services.
	LinkLocal Class = "link-local"
	Private   Class = "private"
	Public    Class = "public"
	// NotUnicast is unspecified, multicast and broadcast addresses.
	NotUnicast Class = "not a unicast"
)

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Of classifies a.
func Of(a netip.Addr) Class {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return Loopback
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return LinkLocal
	case a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return NotUnicast
	case a.IsPrivate() || cgnat.Contains(a):
		return Private
	}
	return Public
}

// OfHost classifies a URL host (no port): an IP literal by its class,
// "localhost" and names under it as Loopback; ok is false for other names,
// which only resolving can classify.
func OfHost(host string) (c Class, ok bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return Loopback, true
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return Of(a), true
	}
	return "", false
}

// Local says which local classes a service at endpoint may point us to: a
// service on loopback may name loopback addresses, one on a private
// network loopback and private ones; a public service neither.
func Local(endpoint string) (loopback, private bool) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false, false
	}
	switch c, _ := OfHost(u.Hostname()); c {
	case Loopback:
		return true, false
	case Private:
		return true, true
	}
	return false, false
}
