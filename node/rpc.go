package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	oldcmds "github.com/ipfs/kubo/commands"
	"github.com/ipfs/kubo/config"
	"github.com/ipfs/kubo/core"
	"github.com/ipfs/kubo/core/corehttp"
	"github.com/ipfs/kubo/repo"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// apiFile is the file in the repo through which kubo's CLI finds a running
// daemon's RPC API (fsrepo's own name for it, unexported there).
const apiFile = "api"

// ErrRPCSecretInRepoConfig means the repo's kubo config holds
// API.Authorizations: RPC secrets in a file, which this appliance does not
// accept (they come from the environment). cmd maps it to a config error.
var ErrRPCSecretInRepoConfig = errors.New("the repo config sets API.Authorizations")

// RPCOptions configure kubo's RPC API over the node.
type RPCOptions struct {
	// Authorizations are kubo's API.Authorizations (user name -> secret and
	// allowed path prefixes), with secrets the caller read from the
	// environment. kubo's own handler enforces them; they live in memory
	// only and are never written to the repo config.
	Authorizations map[string]*config.RPCAuthScope
}

// RPCServer serves kubo's RPC API (/api/v0) from an open, online node with
// kubo's own command handlers, as `ipfs daemon` does, and announces its
// address in <repo>/api so the stock `ipfs` CLI finds it.
type RPCServer struct {
	srv     *http.Server
	addr    ma.Multiaddr
	apiFile string
	done    chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// ServeRPC listens on addr (a multiaddr such as /ip4/127.0.0.1/tcp/5001),
// serves kubo's RPC API there and writes <repo>/api once it accepts
// connections. Close stops it and removes the api file.
//
// The node's kubo config must not carry API.Authorizations itself
// (ErrRPCSecretInRepoConfig): secrets belong in the environment. Other
// keys kubo's handler reads (API.HTTPHeaders: CORS origins, extra headers)
// apply as they do for `ipfs daemon`.
func (n *Node) ServeRPC(addr string, o RPCOptions) (*RPCServer, error) {
	if !n.online {
		return nil, errors.New("rpc api: the node is offline")
	}
	maddr, err := ma.NewMultiaddr(addr)
	if err != nil {
		return nil, fmt.Errorf("rpc api address %q: %w", addr, err)
	}
	cfg, err := n.ipfs.Repo.Config()
	if err != nil {
		return nil, fmt.Errorf("rpc api: reading repo config: %w", err)
	}
	if len(cfg.API.Authorizations) > 0 {
		return nil, fmt.Errorf("%w in %s", ErrRPCSecretInRepoConfig, filepath.Join(n.repoPath, "config"))
	}
	// kubo's CommandsOption reads API.Authorizations from the config of
	// the node it is handed, and nothing else of that node (v0.43.1). It
	// gets a view whose config is a copy with the secrets added, so they
	// never reach the repo's shared config (which `ipfs config` and
	// `ipfs bootstrap` write back to disk). The commands themselves run
	// on the real node through the commands.Context.
	view, err := cfg.Clone()
	if err != nil {
		return nil, fmt.Errorf("rpc api: %w", err)
	}
	view.API.Authorizations = o.Authorizations
	optsNode := &core.IpfsNode{Repo: configView{Repo: n.ipfs.Repo, cfg: view}}

	l, err := manet.Listen(maddr)
	if err != nil {
		return nil, fmt.Errorf("rpc api: listening on %s: %w", maddr, err)
	}
	cctx := oldcmds.Context{
		ConfigRoot: n.repoPath,
		ReqLog:     &oldcmds.ReqLog{},
		ConstructNode: func() (*core.IpfsNode, error) {
			return n.ipfs, nil
		},
	}
	nl := manet.NetListener(l)
	h, err := corehttp.MakeHandler(optsNode, nl,
		corehttp.CheckVersionOption(),
		corehttp.CommandsOption(cctx),
	)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("rpc api: %w", err)
	}
	s := &RPCServer{
		// No write timeout: `ipfs cat`, `dag export` and `add` stream for
		// as long as the content takes.
		srv:     &http.Server{Handler: withoutAuthQuery(h), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute},
		addr:    l.Multiaddr(),
		apiFile: filepath.Join(n.repoPath, apiFile),
		done:    make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(nl)
	}()
	// The listener accepts from here on (connections wait in its backlog
	// until Serve picks them up), so the file never names a closed port.
	if err := n.ipfs.Repo.SetAPIAddr(apiAddr(s.addr)); err != nil {
		s.srv.Close()
		<-s.done
		return nil, fmt.Errorf("rpc api: writing %s: %w", s.apiFile, err)
	}
	return s, nil
}

// Addr is the multiaddr the API listens on (the real port when asked for
// port 0).
func (s *RPCServer) Addr() string { return s.addr.String() }

// APIFile is the path of <repo>/api.
func (s *RPCServer) APIFile() string { return s.apiFile }

// Close removes <repo>/api, so the CLI stops looking for the daemon, then
// lets running requests finish until ctx ends and closes the rest. Later
// calls return the first one's result.
func (s *RPCServer) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *RPCServer) close(ctx context.Context) error {
	rmErr := os.Remove(s.apiFile)
	if errors.Is(rmErr, os.ErrNotExist) {
		rmErr = nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.done
	if rmErr != nil {
		return fmt.Errorf("rpc api: removing %s: %w", s.apiFile, rmErr)
	}
	if err != nil {
		return fmt.Errorf("rpc api: requests still running at shutdown: %w", err)
	}
	return nil
}

// RemoveStaleAPIFile removes a <repo>/api left by a process that did not
// exit cleanly, for a daemon that serves no RPC API: the CLI would
// otherwise try the address it names.
func (n *Node) RemoveStaleAPIFile() error {
	err := os.Remove(filepath.Join(n.repoPath, apiFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the stale %s: %w", filepath.Join(n.repoPath, apiFile), err)
	}
	return nil
}

// configView is the repo as kubo's serve options see it: its Config is
// the copy with the secrets; nothing is ever written through it.
type configView struct {
	repo.Repo
	cfg *config.Config
}

func (v configView) Config() (*config.Config, error) { return v.cfg, nil }

// apiAddr is what the api file names: a catch-all listen address is
// rewritten to loopback, which the CLI can dial (kubo's daemon does the
// same; its helper is not exported).
func apiAddr(m ma.Multiaddr) ma.Multiaddr {
	first, rest := ma.SplitFirst(m)
	if first == nil {
		return m
	}
	switch {
	case first.Equal(&manet.IP4Unspecified[0]):
		return manet.IP4Loopback.Encapsulate(rest)
	case first.Equal(&manet.IP6Unspecified[0]):
		return manet.IP6Loopback.Encapsulate(rest)
	}
	return m
}

// withoutAuthQuery drops the api-auth query parameter before kubo sees the
// request. The stock CLI sends its --api-auth secret both as the
// Authorization header (what kubo checks) and, like every option, in the
// query string, from where kubo would keep it in its request log (`ipfs
// diag cmds`) and print it in warnings about refused requests.
func withoutAuthQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("api-auth") {
			q.Del("api-auth")
			r = r.Clone(r.Context())
			r.URL.RawQuery = q.Encode()
			r.RequestURI = r.URL.RequestURI()
		}
		next.ServeHTTP(w, r)
	})
}
