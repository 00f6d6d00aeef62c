package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/ipfs/kubo/config"
	serialize "github.com/ipfs/kubo/config/serialize"
	"github.com/ipfs/kubo/core/coreiface/options"
	"github.com/ipfs/kubo/repo/fsrepo"
)

// ProfileChange is one key of the repo's kubo config that a profile change
// set (Old or New nil: the key was absent or is removed).
type ProfileChange struct {
	Key string `json:"key"`
	Old any    `json:"old"`
	New any    `json:"new"`
}

// ProfileResult says what ApplyProfile did.
type ProfileResult struct {
	PeerID  string          `json:"peer_id"`
	From    string          `json:"from"`
	To      string          `json:"to"`
	Changes []ProfileChange `json:"changes"`
}

// ApplyProfile switches the existing repo at repoPath to profile, as `ipfs
// config profile apply` does for kubo's profiles: the identity, the
// datastore, the pins and every key the profiles do not set stay as they
// are; the keys that tell one profile from the other (addresses, bootstrap
// peers, routing, discovery, transports; with swarm, Addresses.Swarm) are
// set to what Init writes for profile. It needs the repo's lock (a running
// daemon holds it: ErrLocked), starts no node, and is idempotent: a second
// run changes nothing. With dryRun it only reports.
func ApplyProfile(repoPath, profile string, swarm []string, dryRun bool) (ProfileResult, error) {
	if err := loadPlugins(); err != nil {
		return ProfileResult{}, err
	}
	if profile != ProfileAirGapped && profile != ProfilePublic {
		return ProfileResult{}, fmt.Errorf("unknown profile %q: use %q or %q", profile, ProfileAirGapped, ProfilePublic)
	}
	if err := checkAccess(repoPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ProfileResult{}, err
	}
	if !fsrepo.IsInitialized(repoPath) {
		return ProfileResult{}, fmt.Errorf("%w: %s", ErrNotInitialized, repoPath)
	}
	// Open takes the repo lock: no daemon or command runs on the config
	// while it is rewritten.
	r, err := fsrepo.Open(repoPath)
	if err != nil {
		return ProfileResult{}, classifyOpenError(repoPath, err)
	}
	defer r.Close()
	res := ProfileResult{From: repoProfile(repoPath), To: profile}

	cfgPath := filepath.Join(repoPath, "config")
	var cur map[string]any
	if err := serialize.ReadConfigFile(cfgPath, &cur); err != nil {
		return res, fmt.Errorf("reading repo config: %w", err)
	}
	if id, ok := cur["Identity"].(map[string]any); ok {
		res.PeerID, _ = id["PeerID"].(string)
	}
	want, keys, err := profileKeys(profile, swarm)
	if err != nil {
		return res, err
	}
	for _, k := range keys {
		old, hadOld := getPath(cur, k)
		nv, hasNew := getPath(want, k)
		if hadOld == hasNew && reflect.DeepEqual(old, nv) {
			continue
		}
		res.Changes = append(res.Changes, ProfileChange{Key: k, Old: old, New: nv})
		if hasNew {
			setPath(cur, k, nv)
		} else {
			deletePath(cur, k)
		}
	}
	if dryRun {
		return res, nil
	}
	if len(res.Changes) > 0 {
		// The result must still be a config kubo reads.
		if _, err := config.FromMap(cur); err != nil {
			return res, fmt.Errorf("the changed config does not read back: %w", err)
		}
		if err := serialize.WriteConfigFile(cfgPath, cur); err != nil {
			return res, fmt.Errorf("writing repo config: %w", err)
		}
	}
	if res.From != profile || len(res.Changes) > 0 {
		if err := writeFileSync(filepath.Join(repoPath, profileFile), []byte(profile+"\n")); err != nil {
			return res, fmt.Errorf("recording profile: %w", err)
		}
	}
	return res, syncFS(repoPath)
}

// profileKeys returns the kubo config Init writes for profile (as a JSON
// map) and the keys, as dotted paths to leaves, where it differs from
// the other profile's: those are the profile's settings. Both are built
// on one identity, so only what the profiles set differs.
func profileKeys(profile string, swarm []string) (map[string]any, []string, error) {
	ident, err := config.CreateIdentity(io.Discard, []options.KeyGenerateOption{options.Key.Type(options.Ed25519Key)})
	if err != nil {
		return nil, nil, fmt.Errorf("creating identity: %w", err)
	}
	maps := map[string]map[string]any{}
	for _, p := range []string{ProfileAirGapped, ProfilePublic} {
		c, err := config.InitWithIdentity(ident)
		if err != nil {
			return nil, nil, fmt.Errorf("building config: %w", err)
		}
		var sw []string
		if p == profile {
			sw = swarm
		}
		if err := applyProfile(c, p, sw); err != nil {
			return nil, nil, err
		}
		b, err := config.Marshal(c)
		if err != nil {
			return nil, nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, nil, err
		}
		maps[p] = m
	}
	la, lb := leaves(maps[ProfileAirGapped], ""), leaves(maps[ProfilePublic], "")
	set := map[string]bool{}
	for k, v := range la {
		if w, ok := lb[k]; !ok || !reflect.DeepEqual(v, w) {
			set[k] = true
		}
	}
	for k := range lb {
		if _, ok := la[k]; !ok {
			set[k] = true
		}
	}
	if len(swarm) > 0 {
		set["Addresses.Swarm"] = true
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return maps[profile], keys, nil
}

// leaves flattens a JSON map to dotted paths; lists and empty maps are
// leaves.
func leaves(m map[string]any, prefix string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			for sk, sv := range leaves(sub, p) {
				out[sk] = sv
			}
			continue
		}
		out[p] = v
	}
	return out
}

func getPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, part := range parts[:len(parts)-1] {
		next, ok := m[part].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[part] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

func deletePath(m map[string]any, path string) {
	parts := strings.Split(path, ".")
	for _, part := range parts[:len(parts)-1] {
		next, ok := m[part].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	delete(m, parts[len(parts)-1])
}

// writeFileSync replaces path with b atomically and durably.
func writeFileSync(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
