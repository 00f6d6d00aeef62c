package addrclass

import (
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	for addr, want := range map[string]Class{
		"127.0.0.1": Loopback, "::1": Loopback, "::ffff:127.0.0.1": Loopback,
		"169.254.169.254": LinkLocal, "fe80::1": LinkLocal,
		"10.1.2.3": Private, "192.168.0.1": Private, "172.16.5.5": Private, "fd00::1": Private, "100.64.0.1": Private,
		"8.8.8.8": Public, "2001:4860:4860::8888": Public,
		"0.0.0.0": NotUnicast, "::": NotUnicast, "239.1.1.1": NotUnicast, "224.0.0.1": LinkLocal, "255.255.255.255": NotUnicast,
	} {
		if got := Of(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Of(%s) = %s, want %s", addr, got, want)
		}
	}
}

func TestOfHostAndLocal(t *testing.T) {
	if c, ok := OfHost("LOCALHOST."); !ok || c != Loopback {
		t.Errorf("localhost: %s %v", c, ok)
	}
	if c, ok := OfHost("[fe80::1]"); !ok || c != LinkLocal {
		t.Errorf("[fe80::1]: %s %v", c, ok)
	}
	if _, ok := OfHost("storage.example"); ok {
		t.Error("a name was classified without resolving it")
	}
	for endpoint, want := range map[string][2]bool{
		"http://127.0.0.1:3456":              {true, false},
		"http://10.0.0.5:9097/":              {true, true},
		"https://up.storacha.network/bridge": {false, false},
		"https://169.254.169.254/":           {false, false},
	} {
		l, p := Local(endpoint)
		if [2]bool{l, p} != want {
			t.Errorf("Local(%s) = %v %v, want %v", endpoint, l, p, want)
		}
	}
}
