package appconfig

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// DefaultRPCListen is where `ipfs daemon` serves its RPC API by default, so
// `ipfs --api /ip4/127.0.0.1/tcp/5001 …` in old scripts keeps working.
const DefaultRPCListen = "/ip4/127.0.0.1/tcp/5001"

// RPC is the config's rpc section: the daemon's kubo RPC API (SPEC 4.5).
type RPC struct {
	// Listen is a multiaddr; "" serves no RPC API.
	Listen string `json:"listen"`
	// AllowRemote permits a non-loopback Listen.
	AllowRemote bool `json:"allow_remote"`
	// Authorizations are kubo's API.Authorizations by user name, with the
	// secret in an environment variable.
	Authorizations map[string]RPCAuthorization `json:"authorizations"`
}

// RPCAuthorization is one of kubo's API.Authorizations entries, its
// AuthSecret replaced by the name of the variable that holds it.
type RPCAuthorization struct {
	// AuthSecretEnv names the environment variable holding kubo's
	// AuthSecret: "bearer:TOKEN", "basic:USER:PASSWORD" (or
	// "basic:BASE64"), or a bare token (bearer).
	AuthSecretEnv string `json:"auth_secret_env"`
	// AllowedPaths are the RPC path prefixes the secret may call
	// ("/api/v0" for all), as kubo's AllowedPaths.
	AllowedPaths []string `json:"allowed_paths"`
}

var rpcEnvRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// DefaultRPC is the rpc section's default: loopback, kubo's port.
func DefaultRPC() RPC {
	return RPC{Listen: DefaultRPCListen, Authorizations: map[string]RPCAuthorization{}}
}

func (c RPC) validate() error {
	if c.Listen != "" {
		m, err := ma.NewMultiaddr(c.Listen)
		if err != nil {
			return fmt.Errorf("rpc.listen: %q is not a multiaddr (such as %s; \"\" turns the RPC API off): %v", c.Listen, DefaultRPCListen, err)
		}
		if !c.AllowRemote && !LocalMultiaddr(m) {
			return fmt.Errorf("rpc.listen: %q is not a loopback address; set rpc.allow_remote to true to serve kubo's RPC API beyond this machine (with rpc.authorizations: the API can unpin, add and reconfigure the node)", c.Listen)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Authorizations)) {
		a := c.Authorizations[name]
		key := "rpc.authorizations." + name
		if strings.TrimSpace(name) == "" {
			return fmt.Errorf("rpc.authorizations: a user name must not be empty")
		}
		if a.AuthSecretEnv == "" {
			return fmt.Errorf("%s.auth_secret_env: required: the name of the environment variable holding the secret (kubo's AuthSecret form: bearer:TOKEN or basic:USER:PASSWORD); secrets never go in a config file", key)
		}
		if !rpcEnvRe.MatchString(a.AuthSecretEnv) {
			return fmt.Errorf("%s.auth_secret_env: %q is not an environment variable name", key, a.AuthSecretEnv)
		}
		if len(a.AllowedPaths) == 0 {
			return fmt.Errorf("%s.allowed_paths: required: the RPC path prefixes this secret may call ([\"/api/v0\"] for all of them)", key)
		}
		for i, p := range a.AllowedPaths {
			if !strings.HasPrefix(p, "/api/v0") {
				return fmt.Errorf("%s.allowed_paths[%d]: %q does not start with /api/v0 (kubo matches it against the request path, such as /api/v0/pin/ls)", key, i, p)
			}
		}
	}
	return nil
}

// LocalMultiaddr: a loopback IP address or a unix socket.
func LocalMultiaddr(m ma.Multiaddr) bool {
	if manet.IsIPLoopback(m) {
		return true
	}
	_, err := m.ValueForProtocol(ma.P_UNIX)
	return err == nil
}
