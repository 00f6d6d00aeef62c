package pinning

import (
	"strings"
	"testing"
)

const space = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"

func TestServiceValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Service
		want string // "" means valid
	}{
		{"psa", Service{Name: "cluster", Endpoint: "https://pins.example/", TokenEnv: "CLUSTER_PIN_TOKEN"}, ""},
		{"psa explicit kind", Service{Name: "pinata", Kind: "pinning-service", Endpoint: "https://api.pinata.cloud/psa", TokenEnv: "PINATA_JWT"}, ""},
		{"no name", Service{Endpoint: "https://x/", TokenEnv: "T"}, "services[0].name"},
		{"bad name", Service{Name: "a b", Endpoint: "https://x/", TokenEnv: "T"}, "services[0].name"},
		{"no endpoint", Service{Name: "c", TokenEnv: "T"}, "(c).endpoint: required"},
		{"ftp endpoint", Service{Name: "c", Endpoint: "ftp://x", TokenEnv: "T"}, "not an http(s) URL"},
		{"credentials in endpoint", Service{Name: "c", Endpoint: "https://user:secret@x/", TokenEnv: "T"}, "must not carry credentials"},
		{"no token_env", Service{Name: "c", Endpoint: "https://x/"}, "(c).token_env: required"},
		{"token in token_env", Service{Name: "c", Endpoint: "https://x/", TokenEnv: "eyJhbGciOi.x"}, "not an environment variable name"},
		{"unknown kind", Service{Name: "c", Kind: "s3", Endpoint: "https://x/", TokenEnv: "T"}, `(c).kind: must be "pinning-service" or "storacha-bridge", got "s3"`},
		{"space on psa", Service{Name: "c", Endpoint: "https://x/", TokenEnv: "T", Space: space}, "(c).space: only for kind"},
		{"web3-storage preset", Service{Name: "web3-storage", Space: space}, ""},
		{"web3-storage without space", Service{Name: "web3-storage"}, "(web3-storage).space: required"},
		{"web3-storage bad space", Service{Name: "web3-storage", Space: "did:web:example.com"}, "is not a did:key"},
		{"web3-storage bad service_did", Service{Name: "web3-storage", Space: space, ServiceDID: "did:key:abc"}, "service_did"},
		{"web3-storage as a PSA", Service{Name: "web3-storage", Kind: "pinning-service", Endpoint: "https://x/", TokenEnv: "T"}, ""},
		{"bridge needs env", Service{Name: "s", Kind: "storacha-bridge", Endpoint: "https://up.example/bridge", Space: space}, "(s).auth_secret_env: required"},
		{"bridge token_env", Service{Name: "s", Kind: "storacha-bridge", Endpoint: "https://x/", Space: space, TokenEnv: "T", AuthSecretEnv: "A", AuthorizationEnv: "B"}, "(s).token_env"},
		{"bridge shard size", Service{Name: "web3-storage", Space: space, ShardSize: 10}, "shard_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate("remote_pinning.services[0]")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid entry refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestWeb3StoragePresetFillsOmissions(t *testing.T) {
	s := Service{Name: "web3-storage", Space: space, AuthSecretEnv: "MY_SECRET"}.WithDefaults()
	want := Service{Name: "web3-storage", Kind: KindStorachaBridge, Endpoint: "https://up.storacha.network/bridge", Space: space,
		AuthSecretEnv: "MY_SECRET", AuthorizationEnv: "WEB3_STORAGE_AUTHORIZATION", ShardSize: DefaultShardSize,
		ServiceDID: storachaKey, ServiceIssuer: "did:web:up.storacha.network"}
	if s != want {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
	// Another deployment under the name signs with its own key: the
	// public service's is not assumed for it.
	other := Service{Name: "web3-storage", Space: space, Endpoint: "https://bridge.example/bridge"}.WithDefaults()
	if other.ServiceDID != "" || other.ServiceIssuer != "" {
		t.Fatalf("Storacha's key filled in for another endpoint: %+v", other)
	}
	if _, err := Lookup(nil, "web3-storage"); err == nil || !strings.Contains(err.Error(), `"space"`) {
		t.Fatalf("web3-storage without an entry: %v", err)
	}
	if _, err := Lookup([]Service{{Name: "a"}}, "b"); err == nil || !strings.Contains(err.Error(), "configured: a") {
		t.Fatalf("unknown name: %v", err)
	}
}

// TestFilecoinPinPreset: the name filecoin-pin needs no entry; it is Filecoin
// Pin's local Pinning Service API server, its token optional.
func TestFilecoinPinPreset(t *testing.T) {
	s, err := Lookup(nil, FilecoinPin)
	if err != nil {
		t.Fatal(err)
	}
	want := Service{Name: "filecoin-pin", Kind: KindPinningService, Endpoint: "http://127.0.0.1:3456", TokenEnv: "FILECOIN_PIN_TOKEN", TokenOptional: true}
	if s != want {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
	if err := s.Validate("x"); err != nil {
		t.Fatal(err)
	}
	if got := (Service{Name: FilecoinPin, Endpoint: "http://127.0.0.1:4000"}).WithDefaults(); got.Endpoint != "http://127.0.0.1:4000" || got.TokenEnv != "FILECOIN_PIN_TOKEN" {
		t.Fatalf("an entry's own endpoint must win: %+v", got)
	}
	if got := WithPresets([]Service{{Name: "a", Endpoint: "http://x", TokenEnv: "T"}}); len(got) != 2 || got[1].Name != FilecoinPin {
		t.Fatalf("WithPresets: %+v", got)
	}
	if got := WithPresets([]Service{{Name: FilecoinPin, Endpoint: "http://x:1"}}); len(got) != 1 || got[0].Endpoint != "http://x:1" {
		t.Fatalf("WithPresets with an entry: %+v", got)
	}
}

func TestValidateServicesUniqueNames(t *testing.T) {
	s := Service{Name: "c", Endpoint: "https://x/", TokenEnv: "T"}
	err := ValidateServices([]Service{s, s})
	if err == nil || !strings.Contains(err.Error(), "services[1].name") || !strings.Contains(err.Error(), "services[0]") {
		t.Fatalf("%v", err)
	}
}
