package main

import (
	"maps"
	"slices"
	"testing"

	"github.com/ssid/ssid-anchor/anchor/pinning"
)

// A forwarded `pins --retry` must carry the filecoin-pin token even when
// the config has no filecoin-pin entry (the preset needs none), and every
// variable a configured service names, its bridge secrets included.
func TestForwardedCommandsCarryEveryServiceSecret(t *testing.T) {
	t.Setenv("FILECOIN_PIN_TOKEN", "fp-token")
	t.Setenv("PINATA_JWT", "pinata-token")
	t.Setenv("MY_BRIDGE_SECRET", "bridge-secret")
	t.Setenv("UNRELATED", "x")
	g := &globalOptions{}
	g.cfg.RemotePinning.Services = []pinning.Service{
		{Name: "pinata", Kind: pinning.KindPinningService, Endpoint: "https://api.pinata.cloud/psa", TokenEnv: "PINATA_JWT"},
		{Name: "own-bridge", Kind: pinning.KindStorachaBridge, Endpoint: "https://bridge.example", AuthSecretEnv: "MY_BRIDGE_SECRET", AuthorizationEnv: "MY_BRIDGE_AUTH"},
	}
	env := requestEnv("pins", g)
	for k, want := range map[string]string{"FILECOIN_PIN_TOKEN": "fp-token", "PINATA_JWT": "pinata-token", "MY_BRIDGE_SECRET": "bridge-secret"} {
		if env[k] != want {
			t.Errorf("forwarded env[%s] = %q, want %q (env %v)", k, env[k], want, slices.Sorted(maps.Keys(env)))
		}
	}
	if _, ok := env["UNRELATED"]; ok {
		t.Errorf("an unrelated variable travelled: %v", slices.Sorted(maps.Keys(env)))
	}
	if _, ok := env["MY_BRIDGE_AUTH"]; ok {
		t.Errorf("a variable not set here travelled (the daemon's own must apply): %v", slices.Sorted(maps.Keys(env)))
	}
	if env := requestEnv("verify", g); env != nil {
		t.Errorf("verify carries secrets: %v", slices.Sorted(maps.Keys(env)))
	}
}
