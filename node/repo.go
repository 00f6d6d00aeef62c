package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	lockfile "github.com/ipfs/go-fs-lock"
	"github.com/ipfs/kubo/config"
	"github.com/ipfs/kubo/core/coreiface/options"
	"github.com/ipfs/kubo/repo/fsrepo"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Profiles a repo can be created with.
const (
	// ProfileAirGapped listens on loopback only, dials nobody, has no router.
	ProfileAirGapped = "air-gapped"
	// ProfilePublic joins the public IPFS network as a DHT client and
	// re-provides its pinned anchors.
	ProfilePublic = "public"
)

// Sentinels that cmd maps to exit code 3.
var (
	ErrNotInitialized = errors.New("ipfs repo not initialised")
	ErrLocked         = errors.New("ipfs repo is locked by another process")
)

// Config is the node section of the appliance config.
type Config struct {
	// Profile is ProfileAirGapped or ProfilePublic.
	Profile string `json:"profile"`
	// Swarm lists listen multiaddrs; empty keeps what init wrote.
	Swarm []string `json:"swarm"`
	// Peering lists full multiaddrs (with /p2p/<id>) of peers to stay connected to.
	Peering []string `json:"peering"`
	// Routing overrides the router the profile implies when the node runs
	// online: "" (the profile's: DHT client when public, none when
	// air-gapped), "none", "dhtclient" or "dhtserver" (a private DHT among
	// peered boxes).
	Routing string `json:"routing"`
}

// Validate checks the profile and every multiaddr.
func (c Config) Validate() error {
	switch c.Profile {
	case "", ProfileAirGapped, ProfilePublic:
	default:
		return fmt.Errorf("node.profile: must be %q or %q, got %q", ProfileAirGapped, ProfilePublic, c.Profile)
	}
	switch c.Routing {
	case RoutingAuto, RoutingNone, RoutingDHTClient, RoutingDHTServer:
	default:
		return fmt.Errorf("node.routing: must be \"\" (the profile's), %q, %q or %q, got %q", RoutingNone, RoutingDHTClient, RoutingDHTServer, c.Routing)
	}
	for i, a := range c.Peering {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return fmt.Errorf("node.peering[%d]: %q is not a multiaddr ending in /p2p/<peer id>: %v", i, a, err)
		}
	}
	return nil
}

// InitResult says what Init did.
type InitResult struct {
	Created bool
	PeerID  string
	Profile string
}

// Init creates the repo at repoPath with an ed25519 identity and the given
// profile. It is idempotent: an existing repo is left as it is and its peer ID
// returned.
func Init(repoPath string, cfg Config) (InitResult, error) {
	if err := loadPlugins(); err != nil {
		return InitResult{}, err
	}
	profile := cfg.Profile
	if profile == "" {
		profile = ProfileAirGapped
	}
	if err := checkAccess(repoPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return InitResult{}, err
	}
	if fsrepo.IsInitialized(repoPath) {
		id, p, err := readIdentity(repoPath)
		if err != nil {
			return InitResult{}, err
		}
		return InitResult{Created: false, PeerID: id, Profile: p}, nil
	}
	if err := os.MkdirAll(repoPath, 0o700); err != nil {
		return InitResult{}, fmt.Errorf("creating repo directory: %w", err)
	}
	ident, err := config.CreateIdentity(io.Discard, []options.KeyGenerateOption{options.Key.Type(options.Ed25519Key)})
	if err != nil {
		return InitResult{}, fmt.Errorf("creating identity: %w", err)
	}
	conf, err := config.InitWithIdentity(ident)
	if err != nil {
		return InitResult{}, fmt.Errorf("building config: %w", err)
	}
	if err := applyProfile(conf, profile, cfg.Swarm); err != nil {
		return InitResult{}, err
	}
	if err := fsrepo.Init(repoPath, conf); err != nil {
		return InitResult{}, fmt.Errorf("initialising repo %s: %w", repoPath, err)
	}
	if err := os.WriteFile(filepath.Join(repoPath, profileFile), []byte(profile+"\n"), 0o600); err != nil {
		return InitResult{}, fmt.Errorf("recording profile: %w", err)
	}
	if err := makeShardDirs(repoPath); err != nil {
		return InitResult{}, err
	}
	return InitResult{Created: true, PeerID: ident.PeerID, Profile: profile}, nil
}

// profileFile records which profile the repo was created with, so Open picks
// the matching router without re-deriving it from kubo's config.
const profileFile = "ssid-anchor-profile"

func readIdentity(repoPath string) (id, profile string, err error) {
	b, err := os.ReadFile(filepath.Join(repoPath, "config"))
	if err != nil {
		return "", "", fmt.Errorf("reading repo config: %w", err)
	}
	var conf struct{ Identity struct{ PeerID string } }
	if err := json.Unmarshal(b, &conf); err != nil {
		return "", "", fmt.Errorf("reading repo config %s: %w", filepath.Join(repoPath, "config"), err)
	}
	return conf.Identity.PeerID, repoProfile(repoPath), nil
}

func repoProfile(repoPath string) string {
	b, err := os.ReadFile(filepath.Join(repoPath, profileFile))
	if err != nil {
		return ProfileAirGapped
	}
	switch p := string(trimNL(b)); p {
	case ProfilePublic:
		return p
	default:
		return ProfileAirGapped
	}
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// applyProfile turns kubo's default config into one of ours. Both profiles
// provide only pinned content (the anchors), never every block.
func applyProfile(c *config.Config, profile string, swarm []string) error {
	c.Provide.Enabled = config.True
	c.Provide.Strategy = config.NewOptionalString("pinned")
	c.Discovery.MDNS.Enabled = false
	c.Swarm.DisableNatPortMap = true
	c.AutoTLS.Enabled = config.False
	switch profile {
	case ProfileAirGapped:
		// kubo's own "test" profile (loopback only, no bootstrap peers, no
		// AutoConf, MDNS, AutoTLS, NAT mapping, DNS resolvers or delegated
		// routing), so a kubo upgrade that tightens it carries over; then
		// what it leaves open.
		if err := config.Profiles["test"].Transform(c); err != nil {
			return fmt.Errorf("applying kubo's test profile: %w", err)
		}
		c.Addresses.Swarm = []string{"/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0"}
		c.Addresses.API = config.Strings{}
		c.Addresses.Gateway = config.Strings{}
		c.Routing.Type = config.NewOptionalString("none")
		c.AutoNAT.ServiceMode = config.AutoNATServiceDisabled
		c.Swarm.RelayClient.Enabled = config.False
		c.Swarm.RelayService.Enabled = config.False
		c.Swarm.Transports.Network.QUIC = config.False
		c.Swarm.Transports.Network.WebTransport = config.False
		c.Swarm.Transports.Network.WebRTCDirect = config.False
		c.Swarm.Transports.Network.Websocket = config.False
	case ProfilePublic:
		c.Routing.Type = config.NewOptionalString("dhtclient")
	default:
		return fmt.Errorf("unknown profile %q: use %q or %q", profile, ProfileAirGapped, ProfilePublic)
	}
	if len(swarm) > 0 {
		c.Addresses.Swarm = append([]string(nil), swarm...)
	}
	return nil
}

// classifyOpenError maps kubo's errors to our sentinels, keeping the cause.
func classifyOpenError(repoPath string, err error) error {
	var le lockfile.LockedError
	if errors.As(err, &le) {
		return fmt.Errorf("%w: %s (%v)", ErrLocked, repoPath, err)
	}
	if errors.Is(err, fs.ErrPermission) {
		path := repoPath
		var pe *fs.PathError
		if errors.As(err, &pe) {
			path = pe.Path
		}
		return PermissionError(repoPath, path, err)
	}
	var nr fsrepo.NoRepoError
	if errors.As(err, &nr) {
		return fmt.Errorf("%w: %s", ErrNotInitialized, repoPath)
	}
	return fmt.Errorf("opening repo %s: %w", repoPath, err)
}

// makeShardDirs creates every directory of kubo's default flatfs sharding
// (next-to-last/2: two base32 characters, 1024 directories) up front. flatfs
// creates them one by one as blocks arrive, and on a fresh repo those
// mkdirs were a third of the time of a first anchoring run of many small
// files. The datastore is opened once to lay out blocks/ and SHARDING.
func makeShardDirs(repoPath string) error {
	r, err := fsrepo.Open(repoPath)
	if err != nil {
		return classifyOpenError(repoPath, err)
	}
	if err := r.Close(); err != nil {
		return err
	}
	blocks := filepath.Join(repoPath, "blocks")
	spec, err := os.ReadFile(filepath.Join(blocks, "SHARDING"))
	if err != nil || string(trimNL(spec)) != "/repo/flatfs/shard/v1/next-to-last/2" {
		return nil // another layout: leave it to flatfs
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for _, a := range alphabet {
		for _, b := range alphabet {
			if err := os.Mkdir(filepath.Join(blocks, string(a)+string(b)), 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("preparing block directories: %w", err)
			}
		}
	}
	return syncFS(blocks)
}
