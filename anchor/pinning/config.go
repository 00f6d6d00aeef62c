package pinning

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Service kinds.
const (
	// KindPinningService is any IPFS Pinning Service API endpoint (the default).
	KindPinningService = "pinning-service"
	// KindStorachaBridge is Storacha (Web3.Storage today) through its
	// UCAN-HTTP bridge.
	KindStorachaBridge = "storacha-bridge"
)

// Web3Storage is the preset service name behind `anchor --web3-storage`.
const Web3Storage = "web3-storage"

// FilecoinPin is the preset name of Filecoin Pin's local Pinning Service API
// server (filecoin-project/filecoin-pin, `filecoin-pin server`), which
// Storacha names as its users' migration target.
const FilecoinPin = "filecoin-pin"

// Storacha's public bridge and the identity that signs its receipts:
// receipts are issued as did:web:up.storacha.network and signed with the
// key this did:web resolves to (storacha/indexing-service presets).
const (
	storachaEndpoint = "https://up.storacha.network/bridge"
	storachaIssuer   = "did:web:up.storacha.network"
	storachaKey      = "did:key:z6MkqdncRZ1wj8zxCTDUQ8CRT8NQWd63T7mZRvZUX8B7XDFi"
)

// Web3StorageStopped is what the public service's refusals mean, with
// the dates (Storacha's announcement; upload-service PRs #643, #688, #708).
const Web3StorageStopped = "Web3.Storage (Storacha) stopped taking uploads on 15 April 2026 and has refused writes since 15 May 2026"

// DefaultShardSize is the CAR shard size of Storacha's reference client.
const DefaultShardSize = 133_169_152

// Service is one entry of remote_pinning.services in the appliance config.
type Service struct {
	Name string `json:"name"`
	// Kind is KindPinningService (default) or KindStorachaBridge.
	Kind     string `json:"kind,omitempty"`
	Endpoint string `json:"endpoint"`
	// TokenEnv names the environment variable holding the bearer token
	// (pinning-service). The token itself never appears in config.
	TokenEnv string `json:"token_env,omitempty"`
	// TokenOptional lets requests go without a token while TokenEnv is
	// unset (a server run without authentication, such as
	// `filecoin-pin server --allow-no-auth`).
	TokenOptional bool `json:"token_optional,omitempty"`
	// Auto sends every new anchor to this service.
	Auto bool `json:"auto,omitempty"`

	// storacha-bridge only.
	Space            string `json:"space,omitempty"`
	AuthSecretEnv    string `json:"auth_secret_env,omitempty"`
	AuthorizationEnv string `json:"authorization_env,omitempty"`
	ServiceDID       string `json:"service_did,omitempty"`
	// ServiceIssuer is the iss receipts must carry when the service signs
	// under another DID than its key (default: ServiceDID).
	ServiceIssuer string `json:"service_issuer,omitempty"`
	ShardSize     int64  `json:"shard_size,omitempty"`
}

// Web3StoragePreset is what the name web3-storage means when the config
// leaves a key out: Storacha's public bridge, the variables its docs use,
// and the service's signing key, so its receipts are verified. The public
// service takes no uploads any more (Web3StorageStopped); the preset stays
// for the requests already queued and for deployments that still do.
func Web3StoragePreset() Service {
	return Service{
		Name:             Web3Storage,
		Kind:             KindStorachaBridge,
		Endpoint:         storachaEndpoint,
		AuthSecretEnv:    "WEB3_STORAGE_AUTH_SECRET",
		AuthorizationEnv: "WEB3_STORAGE_AUTHORIZATION",
		ServiceDID:       storachaKey,
		ServiceIssuer:    storachaIssuer,
		ShardSize:        DefaultShardSize,
	}
}

// FilecoinPinPreset is what the name filecoin-pin means when the config
// leaves a key out: `filecoin-pin server --port 3456` on this machine, its
// access token (ACCESS_TOKEN there) in FILECOIN_PIN_TOKEN, which may stay
// unset for a server run with --allow-no-auth. It needs no config entry.
func FilecoinPinPreset() Service {
	return Service{
		Name:          FilecoinPin,
		Kind:          KindPinningService,
		Endpoint:      "http://127.0.0.1:3456",
		TokenEnv:      "FILECOIN_PIN_TOKEN",
		TokenOptional: true,
	}
}

// IsStorachaPublic says whether s is Storacha's public service, whose
// refusals mean Web3StorageStopped.
func (s Service) IsStorachaPublic() bool {
	s = s.WithDefaults()
	return s.Name == Web3Storage || strings.TrimRight(s.Endpoint, "/") == storachaEndpoint
}

// WithDefaults fills in what an entry leaves out: the kind, and for the
// preset names web3-storage and filecoin-pin everything of the preset it
// omits. Storacha's signing key is filled in only with Storacha's own
// endpoint: another deployment signs with its own.
func (s Service) WithDefaults() Service {
	if s.Name == Web3Storage {
		p := Web3StoragePreset()
		if s.Kind == "" {
			s.Kind = p.Kind
		}
		if s.Kind == KindStorachaBridge {
			if s.Endpoint == "" {
				s.Endpoint = p.Endpoint
			}
			if s.AuthSecretEnv == "" {
				s.AuthSecretEnv = p.AuthSecretEnv
			}
			if s.AuthorizationEnv == "" {
				s.AuthorizationEnv = p.AuthorizationEnv
			}
			if s.ServiceDID == "" && s.ServiceIssuer == "" && strings.TrimRight(s.Endpoint, "/") == p.Endpoint {
				s.ServiceDID, s.ServiceIssuer = p.ServiceDID, p.ServiceIssuer
			}
		}
	}
	if s.Name == FilecoinPin && (s.Kind == "" || s.Kind == KindPinningService) {
		p := FilecoinPinPreset()
		if s.Endpoint == "" {
			s.Endpoint = p.Endpoint
		}
		if s.TokenEnv == "" {
			s.TokenEnv, s.TokenOptional = p.TokenEnv, p.TokenOptional
		}
	}
	if s.Kind == "" {
		s.Kind = KindPinningService
	}
	if s.Kind == KindStorachaBridge && s.ShardSize == 0 {
		s.ShardSize = DefaultShardSize
	}
	return s
}

// Provider is how statistics.storage_providers names this service once it
// holds a copy.
func (s Service) Provider() string { return s.WithDefaults().Kind + ":" + s.Name }

var (
	nameRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	envRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	didKeyRe = regexp.MustCompile(`^did:key:z[1-9A-HJ-NP-Za-km-z]{40,}$`)
)

// Validate checks one entry (with defaults applied); key is where it sits in
// the config, e.g. "remote_pinning.services[0]".
func (s Service) Validate(key string) error {
	s = s.WithDefaults()
	if !nameRe.MatchString(s.Name) {
		return fmt.Errorf("%s.name: must be 1-64 letters, digits, '.', '_' or '-', got %q", key, s.Name)
	}
	key = fmt.Sprintf("%s (%s)", key, s.Name)
	if err := checkEndpoint(s.Endpoint); err != nil {
		return fmt.Errorf("%s.endpoint: %v", key, err)
	}
	env := func(k, v string) error {
		if v == "" {
			return fmt.Errorf("%s.%s: required for kind %q (the name of an environment variable; secrets never go in the config)", key, k, s.Kind)
		}
		if !envRe.MatchString(v) {
			return fmt.Errorf("%s.%s: %q is not an environment variable name", key, k, v)
		}
		return nil
	}
	switch s.Kind {
	case KindPinningService:
		if err := env("token_env", s.TokenEnv); err != nil {
			return err
		}
		for k, v := range map[string]string{"space": s.Space, "auth_secret_env": s.AuthSecretEnv, "authorization_env": s.AuthorizationEnv, "service_did": s.ServiceDID, "service_issuer": s.ServiceIssuer} {
			if v != "" {
				return fmt.Errorf("%s.%s: only for kind %q; this service is %q", key, k, KindStorachaBridge, s.Kind)
			}
		}
		if s.ShardSize != 0 {
			return fmt.Errorf("%s.shard_size: only for kind %q; this service is %q", key, KindStorachaBridge, s.Kind)
		}
	case KindStorachaBridge:
		if s.TokenEnv != "" || s.TokenOptional {
			return fmt.Errorf("%s.token_env: kind %q authenticates with auth_secret_env and authorization_env, not a bearer token", key, s.Kind)
		}
		if s.Space == "" {
			return fmt.Errorf("%s.space: required for kind %q (the space DID, did:key:z6Mk...)", key, s.Kind)
		}
		if !didKeyRe.MatchString(s.Space) {
			return fmt.Errorf("%s.space: %q is not a did:key (did:key:z6Mk...)", key, s.Space)
		}
		if s.ServiceDID != "" && !didKeyRe.MatchString(s.ServiceDID) {
			return fmt.Errorf("%s.service_did: %q is not a did:key (did:key:z6Mk...)", key, s.ServiceDID)
		}
		if s.ServiceIssuer != "" && (s.ServiceDID == "" || !strings.HasPrefix(s.ServiceIssuer, "did:")) {
			return fmt.Errorf("%s.service_issuer: %q needs service_did and must be a DID such as did:web:up.storacha.network", key, s.ServiceIssuer)
		}
		if err := env("auth_secret_env", s.AuthSecretEnv); err != nil {
			return err
		}
		if err := env("authorization_env", s.AuthorizationEnv); err != nil {
			return err
		}
		if s.ShardSize < 1<<20 || s.ShardSize > 4<<30 {
			return fmt.Errorf("%s.shard_size: must be between 1 MiB and 4 GiB, got %d", key, s.ShardSize)
		}
	default:
		return fmt.Errorf("%s.kind: must be %q or %q, got %q", key, KindPinningService, KindStorachaBridge, s.Kind)
	}
	return nil
}

func checkEndpoint(e string) error {
	if e == "" {
		return fmt.Errorf("required (the service's base URL, e.g. https://api.pinata.cloud/psa)")
	}
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", redactURL(e))
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials; put the token in the environment variable named by token_env")
	}
	return nil
}

// ValidateServices checks every entry and that names are unique.
func ValidateServices(ss []Service) error {
	seen := map[string]int{}
	for i, s := range ss {
		key := fmt.Sprintf("remote_pinning.services[%d]", i)
		if err := s.Validate(key); err != nil {
			return err
		}
		if j, dup := seen[s.Name]; dup {
			return fmt.Errorf("%s.name: %q is already used by remote_pinning.services[%d]", key, s.Name, j)
		}
		seen[s.Name] = i
	}
	return nil
}

// Lookup finds the service called name. The presets resolve even without a
// config entry: filecoin-pin needs nothing more, web3-storage still needs
// its space, which the error then names.
func Lookup(ss []Service, name string) (Service, error) {
	for _, s := range ss {
		if s.Name == name {
			return s.WithDefaults(), nil
		}
	}
	if name == FilecoinPin {
		return FilecoinPinPreset(), nil
	}
	if name == Web3Storage {
		p := Web3StoragePreset()
		if err := p.Validate("remote_pinning.services[web3-storage]"); err != nil {
			return Service{}, fmt.Errorf("service web3-storage has no entry in remote_pinning.services: add {\"name\": \"web3-storage\", \"space\": \"did:key:z6Mk...\"} to the appliance config (%v)", err)
		}
		return p, nil
	}
	var names []string
	for _, s := range ss {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return Service{}, fmt.Errorf("no remote pinning service named %q: remote_pinning.services is empty in the appliance config", name)
	}
	return Service{}, fmt.Errorf("no remote pinning service named %q (configured: %s)", name, strings.Join(names, ", "))
}

// WithPresets is ss with defaults applied, plus the filecoin-pin preset when
// no entry claims its name: it needs no config, so requests queued for it
// (by `pins move --to filecoin-pin`) always have a service to go to.
func WithPresets(ss []Service) []Service {
	out := make([]Service, 0, len(ss)+1)
	have := false
	for _, s := range ss {
		out = append(out, s.WithDefaults())
		have = have || s.Name == FilecoinPin
	}
	if !have {
		out = append(out, FilecoinPinPreset())
	}
	return out
}

// redactURL drops userinfo, query and fragment, which may hold secrets.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "***"
	}
	u.Fragment = ""
	return u.String()
}
