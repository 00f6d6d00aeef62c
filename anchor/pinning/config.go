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
// leaves a key out: Storacha's public bridge and the variables its docs use.
func Web3StoragePreset() Service {
	return Service{
		Name:             Web3Storage,
		Kind:             KindStorachaBridge,
		Endpoint:         "https://up.storacha.network/bridge",
		AuthSecretEnv:    "WEB3_STORAGE_AUTH_SECRET",
		AuthorizationEnv: "WEB3_STORAGE_AUTHORIZATION",
		ShardSize:        DefaultShardSize,
	}
}

// WithDefaults fills in what an entry leaves out: the kind, and for the
// name web3-storage everything of the preset it omits.
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
		if s.TokenEnv != "" {
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

// Lookup finds the service called name. web3-storage resolves to the preset
// even without a config entry, so the error then names what it still needs
// (its space).
func Lookup(ss []Service, name string) (Service, error) {
	for _, s := range ss {
		if s.Name == name {
			return s.WithDefaults(), nil
		}
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
