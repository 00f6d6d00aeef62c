package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestApplyProfile: an air-gapped repo switched to public (and back) gets
// exactly what Init writes for that profile in the keys the profiles set,
// keeps its identity and every other key, records the profile Open reads,
// and a second apply changes nothing. Nothing goes online: only the config
// is rewritten (issue 21, item 4). On main's code there is no way to
// change a repo's profile.
func TestApplyProfile(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	res, err := Init(repo, Config{Profile: ProfileAirGapped})
	if err != nil {
		t.Fatal(err)
	}
	before := readConf(t, repo)
	// A key the operator set that no profile touches survives.
	before["Datastore"].(map[string]any)["StorageMax"] = "77GB"
	b, _ := json.MarshalIndent(before, "", "  ")
	if err := os.WriteFile(filepath.Join(repo, "config"), b, 0o600); err != nil {
		t.Fatal(err)
	}

	got, err := ApplyProfile(repo, ProfilePublic, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != ProfileAirGapped || got.To != ProfilePublic || got.PeerID != res.PeerID || len(got.Changes) == 0 {
		t.Fatalf("apply public: %+v", got)
	}
	keys := map[string]ProfileChange{}
	for _, c := range got.Changes {
		keys[c.Key] = c
	}
	for _, k := range []string{"Routing.Type", "Addresses.Swarm", "Bootstrap"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("apply public did not change %s: %+v", k, got.Changes)
		}
	}
	if c := keys["Routing.Type"]; c.Old != "none" || c.New != "dhtclient" {
		t.Errorf("Routing.Type change %+v", c)
	}
	after := readConf(t, repo)
	if !reflect.DeepEqual(after["Identity"], before["Identity"]) || after["Datastore"].(map[string]any)["StorageMax"] != "77GB" {
		t.Fatalf("identity or datastore changed")
	}
	if p := repoProfile(repo); p != ProfilePublic {
		t.Fatalf("recorded profile %q", p)
	}
	// The profile's keys are what a fresh public repo has.
	fresh := filepath.Join(dir, "fresh")
	if _, err := Init(fresh, Config{Profile: ProfilePublic}); err != nil {
		t.Fatal(err)
	}
	fm := readConf(t, fresh)
	for k := range keys {
		a, _ := getPath(after, k)
		f, _ := getPath(fm, k)
		if !reflect.DeepEqual(a, f) {
			t.Errorf("%s: applied %v, a fresh public repo has %v", k, a, f)
		}
	}
	if bs, _ := getPath(after, "Bootstrap"); len(bs.([]any)) == 0 {
		t.Errorf("public repo without bootstrap peers")
	}
	// Idempotent.
	again, err := ApplyProfile(repo, ProfilePublic, nil, false)
	if err != nil || len(again.Changes) != 0 {
		t.Fatalf("second apply: %+v, %v", again, err)
	}
	// Back to air-gapped: the config is air-gapped's again in every key.
	back, err := ApplyProfile(repo, ProfileAirGapped, nil, false)
	if err != nil || len(back.Changes) != len(got.Changes) {
		t.Fatalf("apply air-gapped: %d changes (public had %d), %v", len(back.Changes), len(got.Changes), err)
	}
	if final := readConf(t, repo); !reflect.DeepEqual(final, before) {
		t.Errorf("air-gapped -> public -> air-gapped is not the original config")
	}
	// A dry run reports and writes nothing.
	dry, err := ApplyProfile(repo, ProfilePublic, nil, true)
	if err != nil || len(dry.Changes) == 0 || repoProfile(repo) != ProfileAirGapped {
		t.Fatalf("dry run: %+v, %v, recorded %s", dry, err, repoProfile(repo))
	}
	// --swarm replaces the profile's listen addresses, and only them.
	sw := []string{"/ip4/127.0.0.1/tcp/4999"}
	withSwarm, err := ApplyProfile(repo, ProfileAirGapped, sw, false)
	if err != nil || len(withSwarm.Changes) != 1 || withSwarm.Changes[0].Key != "Addresses.Swarm" {
		t.Fatalf("apply with swarm: %+v, %v", withSwarm, err)
	}
	if a, _ := getPath(readConf(t, repo), "Addresses.Swarm"); !reflect.DeepEqual(a, []any{sw[0]}) {
		t.Fatalf("Addresses.Swarm %v", a)
	}
	if again, err := ApplyProfile(repo, ProfileAirGapped, sw, false); err != nil || len(again.Changes) != 0 {
		t.Fatalf("apply with swarm again: %+v, %v", again, err)
	}
	if _, err := ApplyProfile(repo, "open", nil, false); err == nil || !strings.Contains(err.Error(), "unknown profile") {
		t.Fatalf("unknown profile: %v", err)
	}
	if _, err := ApplyProfile(filepath.Join(dir, "none"), ProfilePublic, nil, false); err == nil {
		t.Fatal("apply on no repo succeeded")
	}
}

func readConf(t *testing.T, repo string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "config"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
