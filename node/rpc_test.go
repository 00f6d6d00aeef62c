package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/kubo/config"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// rpcURL turns the server's multiaddr into the base URL of /api/v0.
func rpcURL(t *testing.T, s *RPCServer) string {
	t.Helper()
	m, err := ma.NewMultiaddr(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_, host, err := manet.DialArgs(m)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + host + "/api/v0"
}

type rpcCall struct {
	method, path string
	query        url.Values
	header       http.Header
}

func (c rpcCall) do(t *testing.T, base string) (int, string) {
	t.Helper()
	m := c.method
	if m == "" {
		m = http.MethodPost
	}
	u := base + c.path
	if c.query != nil {
		u += "?" + c.query.Encode()
	}
	req, err := http.NewRequest(m, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func serveRPC(t *testing.T, n *Node, o RPCOptions) *RPCServer {
	t.Helper()
	s, err := n.ServeRPC("/ip4/127.0.0.1/tcp/0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// TestRPCServesKuboCommands: kubo's RPC API runs kubo's commands on the
// node (id, cat of an anchor), announces itself in <repo>/api, refuses GET
// and cross-origin browser requests as `ipfs daemon` does, and on Close
// removes the api file and stops listening.
func TestRPCServesKuboCommands(t *testing.T) {
	n := openOnline(t, RoutingNone)
	data := seededBytes(t, 300<<10)
	c := addPinned(t, n, data)
	s := serveRPC(t, n, RPCOptions{})
	base := rpcURL(t, s)

	b, err := os.ReadFile(filepath.Join(n.RepoPath(), "api"))
	if err != nil || string(b) != s.Addr() || s.APIFile() != filepath.Join(n.RepoPath(), "api") {
		t.Fatalf("api file %q (%v), want %s", b, err, s.Addr())
	}
	code, body := rpcCall{path: "/id"}.do(t, base)
	var id struct{ ID string }
	if code != 200 || json.Unmarshal([]byte(body), &id) != nil || id.ID != n.PeerID() {
		t.Fatalf("POST /id: %d %s, want the node's peer ID %s", code, body, n.PeerID())
	}
	code, body = rpcCall{path: "/cat", query: url.Values{"arg": {c.String()}}}.do(t, base)
	if code != 200 || body != string(data) {
		t.Fatalf("POST /cat %s: %d, %d bytes, want the %d bytes added", c, code, len(body), len(data))
	}
	if code, _ := (rpcCall{method: http.MethodGet, path: "/id"}).do(t, base); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /id: %d, want 405 (kubo's API answers POST only)", code)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	for _, h := range []struct {
		key, value string
		want       int
	}{
		{"Origin", "http://evil.example", 403},
		{"Referer", "http://evil.example/page", 403},
		{"Origin", "http://127.0.0.1:" + port, 200},
		{"Origin", "http://localhost:" + port, 200},
		// A browser form post with neither Origin nor Referer.
		{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64)", 403},
	} {
		code, body := rpcCall{path: "/id", header: http.Header{h.key: {h.value}}}.do(t, base)
		if code != h.want {
			t.Errorf("POST /id with %s: %s: %d %q, want %d", h.key, h.value, code, body, h.want)
		}
	}

	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.APIFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("api file after Close: %v", err)
	}
	cl := http.Client{Timeout: 5 * time.Second}
	if resp, err := cl.Post(base+"/id", "", nil); err == nil {
		resp.Body.Close()
		t.Errorf("the API still answers after Close: %s", resp.Status)
	}
}

// TestRPCAuthorizations: kubo's API.Authorizations, given in memory,
// are enforced by kubo's handler (bearer and basic, allowed paths); the
// secret never reaches the repo config on disk, even when a command writes
// the config, nor kubo's request log when the CLI sends it in the query.
func TestRPCAuthorizations(t *testing.T) {
	n := openOnline(t, RoutingNone)
	const bearer, password = "s3cr3t-b34r3r-t0k3n", "p4ssw0rd-s3cr3t"
	s := serveRPC(t, n, RPCOptions{Authorizations: map[string]*config.RPCAuthScope{
		"ci":      {AuthSecret: "bearer:" + bearer, AllowedPaths: []string{"/api/v0"}},
		"auditor": {AuthSecret: "basic:audit:" + password, AllowedPaths: []string{"/api/v0/id"}},
	}})
	base := rpcURL(t, s)
	auth := func(v string) http.Header { return http.Header{"Authorization": {v}} }
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		want   int
	}{
		{"no token", "/id", nil, 403},
		{"wrong token", "/id", auth("Bearer nope"), 403},
		{"bearer", "/id", auth("Bearer " + bearer), 200},
		{"basic on its path", "/id", auth(config.ConvertAuthSecret("basic:audit:" + password)), 200},
		{"basic off its path", "/pin/ls", auth(config.ConvertAuthSecret("basic:audit:" + password)), 403},
		{"version needs no path", "/version", auth(config.ConvertAuthSecret("basic:audit:" + password)), 200},
	} {
		code, body := rpcCall{path: tc.path, header: tc.header}.do(t, base)
		if code != tc.want {
			t.Errorf("%s: POST %s: %d %q, want %d", tc.name, tc.path, code, body, tc.want)
		}
		if code == 403 && !strings.Contains(body, "Kubo RPC Access Denied") {
			t.Errorf("%s: 403 from something other than kubo's authorization check: %q", tc.name, body)
		}
	}

	// A command that writes the repo config (kubo's `ipfs config`) writes
	// the config as it is on disk plus the change, not the secrets.
	ok := auth("Bearer " + bearer)
	if code, body := (rpcCall{path: "/config", query: url.Values{"arg": {"Datastore.StorageMax", "11GB"}}, header: ok}).do(t, base); code != 200 {
		t.Fatalf("ipfs config through the API: %d %s", code, body)
	}
	cfgFile, err := os.ReadFile(filepath.Join(n.RepoPath(), "config"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfgFile), `"StorageMax": "11GB"`) {
		t.Fatalf("the config write did not happen:\n%s", cfgFile)
	}
	if strings.Contains(string(cfgFile), bearer) || strings.Contains(string(cfgFile), password) || strings.Contains(string(cfgFile), "Authorizations\": {") {
		t.Fatalf("an RPC secret reached the repo config:\n%s", cfgFile)
	}

	// The stock CLI also puts --api-auth in the query string; kubo would
	// keep it in its request log.
	q := url.Values{"api-auth": {"bearer:" + bearer}}
	if code, body := (rpcCall{path: "/id", query: q, header: ok}).do(t, base); code != 200 {
		t.Fatalf("POST /id?api-auth=…: %d %s", code, body)
	}
	code, body := rpcCall{path: "/diag/cmds", query: url.Values{"verbose": {"true"}}, header: ok}.do(t, base)
	if code != 200 || !strings.Contains(body, `"Command":"id"`) {
		t.Fatalf("diag cmds: %d %s (want the id calls listed)", code, body)
	}
	if strings.Contains(body, bearer) {
		t.Fatalf("the secret is in kubo's request log: %s", body)
	}
}

// TestRPCRefusesSecretsInRepoConfig: a repo whose kubo config carries
// API.Authorizations (secrets in a file) is not served.
func TestRPCRefusesSecretsInRepoConfig(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(repo, Config{Profile: ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(repo, "config")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["API"] = map[string]any{"Authorizations": map[string]any{"ci": map[string]any{"AuthSecret": "bearer:in-the-file", "AllowedPaths": []string{"/api/v0"}}}}
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), repo, OpenOptions{Online: true, Swarm: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	s, err := n.ServeRPC("/ip4/127.0.0.1/tcp/0", RPCOptions{})
	if !errors.Is(err, ErrRPCSecretInRepoConfig) || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "in-the-file") {
		if s != nil {
			s.Close(context.Background())
		}
		t.Fatalf("ServeRPC with API.Authorizations in the repo config: %v, want ErrRPCSecretInRepoConfig naming %s (and not the secret)", err, p)
	}
	if _, err := os.Stat(filepath.Join(repo, "api")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused RPC API wrote the api file: %v", err)
	}
}

// TestAPIAddrRewritesCatchAll: the api file names loopback for a catch-all
// listen address, as kubo's daemon writes it.
func TestAPIAddrRewritesCatchAll(t *testing.T) {
	for in, want := range map[string]string{
		"/ip4/0.0.0.0/tcp/5001":   "/ip4/127.0.0.1/tcp/5001",
		"/ip6/::/tcp/5001":        "/ip6/::1/tcp/5001",
		"/ip4/127.0.0.1/tcp/5001": "/ip4/127.0.0.1/tcp/5001",
		"/ip4/10.1.2.3/tcp/5001":  "/ip4/10.1.2.3/tcp/5001",
		"/unix/run/ipfs.sock":     "/unix/run/ipfs.sock",
	} {
		m, err := ma.NewMultiaddr(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := apiAddr(m).String(); got != want {
			t.Errorf("apiAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
