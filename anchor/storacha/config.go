package storacha

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/multiformats/go-multibase"
	"github.com/multiformats/go-multicodec"
	"github.com/multiformats/go-varint"
)

// The web3-storage preset: Storacha's public bridge and the variables the
// tokens are read from.
const (
	PresetName           = "web3-storage"
	DefaultEndpoint      = "https://up.storacha.network/bridge"
	EnvAuthSecret        = "WEB3_STORAGE_AUTH_SECRET"
	EnvAuthorization     = "WEB3_STORAGE_AUTHORIZATION"
	DefaultShardSize     = 133_169_152 // the JS reference client's shard limit
	minShardSize         = 1 << 10
	defaultAnswerTimeout = 2 * time.Minute // a bridge answer: receipts, small
	defaultStallWindow   = time.Minute     // an upload moving less than
	defaultMinProgress   = 64 << 10        // this in a window is stalled
	maxServiceMessage    = 300
	maxResponseBodySize  = 32 << 20
)

// Config is one storacha-bridge service. The caller reads AuthSecret and
// Authorization from the environment variables the operator named; the
// values never leave this struct except in the two request headers.
type Config struct {
	Endpoint      string // POST URL of the bridge
	Space         string // did:key of the space the tokens were made for
	AuthSecret    string // value of the X-Auth-Secret header
	Authorization string // value of the Authorization header
	// ServiceDID, when set, is the did:key (ed25519) that must have signed
	// every receipt; receipts are then verified, otherwise kept unverified.
	ServiceDID string
	// ServiceIssuer is the `iss` receipts must carry when the service signs
	// under another name than its key (Storacha issues as
	// did:web:up.storacha.network with a did:key signer). Empty means iss
	// must equal ServiceDID.
	ServiceIssuer string
	ShardSize     int64  // 0 means DefaultShardSize
	TempDir       string // where shard CARs are written; "" means os.TempDir()
	HTTPClient    *http.Client
	Logger        *slog.Logger
	// AnswerTimeout bounds one bridge request, answer included (0: 2 min).
	AnswerTimeout time.Duration
	// StallWindow and MinProgress: an upload that moves fewer than
	// MinProgress bytes in a StallWindow is cut (0: a minute, 64 KiB).
	StallWindow time.Duration
	MinProgress int64
}

func (c Config) answerTimeout() time.Duration {
	if c.AnswerTimeout > 0 {
		return c.AnswerTimeout
	}
	return defaultAnswerTimeout
}

func (c Config) stallWindow() time.Duration {
	if c.StallWindow > 0 {
		return c.StallWindow
	}
	return defaultStallWindow
}

func (c Config) minProgress() int64 {
	if c.MinProgress > 0 {
		return c.MinProgress
	}
	return defaultMinProgress
}

// String never shows the tokens, so a Config printed by mistake leaks nothing.
func (c Config) String() string {
	return fmt.Sprintf("storacha-bridge{endpoint=%s space=%s service_did=%s shard_size=%d}", redactURL(c.Endpoint), c.Space, c.ServiceDID, c.shardSize())
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue keeps the tokens out of structured logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func (c Config) shardSize() int64 {
	if c.ShardSize == 0 {
		return DefaultShardSize
	}
	return c.ShardSize
}

// Validate checks the configuration once; each error names the key, the
// rule and (for non-secrets) the value.
func (c Config) Validate() error {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("endpoint: must be an http(s) URL such as %s (got %q)", DefaultEndpoint, redactURL(c.Endpoint))
	}
	if u.User != nil {
		return fmt.Errorf("endpoint: must not carry credentials; the bridge tokens go in auth_secret_env and authorization_env")
	}
	if _, err := parseDIDKey(c.Space); err != nil {
		return fmt.Errorf("space: must be the did:key of a Storacha space (did:key:z6Mk..., as `storacha space ls` shows): %w", err)
	}
	for _, s := range []struct{ key, val string }{{"auth_secret", c.AuthSecret}, {"authorization", c.Authorization}} {
		if s.val == "" {
			return fmt.Errorf("%s: empty; set the variable named by %s_env to the value `storacha bridge generate-tokens` printed", s.key, s.key)
		}
		if strings.ContainsAny(s.val, "\r\n\x00 ") {
			return fmt.Errorf("%s: must be one token without spaces or line breaks (check the variable named by %s_env)", s.key, s.key)
		}
	}
	if c.ServiceDID != "" {
		if _, err := parseDIDKey(c.ServiceDID); err != nil {
			return fmt.Errorf("service_did: %w", err)
		}
	}
	if c.ServiceIssuer != "" && !strings.HasPrefix(c.ServiceIssuer, "did:") {
		return fmt.Errorf("service_issuer: must be a DID such as did:web:up.storacha.network (got %q)", c.ServiceIssuer)
	}
	if c.ShardSize != 0 && c.ShardSize < minShardSize {
		return fmt.Errorf("shard_size: must be at least %d bytes, or 0 for the default %d (got %d)", minShardSize, DefaultShardSize, c.ShardSize)
	}
	return nil
}

// parseDIDKey turns did:key:z... (multibase base58btc of the multicodec
// ed25519-pub prefix and the 32 key bytes) into a public key.
func parseDIDKey(did string) (crypto.PubKey, error) {
	rest, ok := strings.CutPrefix(did, "did:key:")
	if !ok {
		return nil, fmt.Errorf("%q is not a did:key", did)
	}
	enc, data, err := multibase.Decode(rest)
	if err != nil {
		return nil, fmt.Errorf("%q: not multibase: %w", did, err)
	}
	if enc != multibase.Base58BTC {
		return nil, fmt.Errorf("%q: a did:key is base58btc (starts with z)", did)
	}
	code, n, err := varint.FromUvarint(data)
	if err != nil {
		return nil, fmt.Errorf("%q: bad multicodec prefix: %w", did, err)
	}
	if multicodec.Code(code) != multicodec.Ed25519Pub {
		return nil, fmt.Errorf("%q: key type %s is not ed25519 (only ed25519 receipts are supported)", did, multicodec.Code(code))
	}
	k, err := crypto.UnmarshalEd25519PublicKey(data[n:])
	if err != nil {
		return nil, fmt.Errorf("%q: %w", did, err)
	}
	return k, nil
}

// DIDKey renders an ed25519 public key as did:key (used by tests and by
// operators checking which key a service signs with).
func DIDKey(pub ed25519.PublicKey) string {
	b := append(varint.ToUvarint(uint64(multicodec.Ed25519Pub)), pub...)
	s, _ := multibase.Encode(multibase.Base58BTC, b)
	return "did:key:" + s
}

// redactURL drops user info and the query of a URL: presigned PUT URLs
// carry their credentials there.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.String()
}
