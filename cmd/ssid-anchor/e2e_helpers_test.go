package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths of the default layout used by the end-to-end tests.
const (
	tLog      = "24_meta_orchestration/registry/logs/registry_events.log"
	tManifest = "24_meta_orchestration/registry/manifests/ipfs_anchor_manifest.json"
	tReleases = "05_documentation/releases"
)

var modules = []string{"01_ai_layer", "02_audit_logging", "03_core", "04_deployment", "05_documentation",
	"06_data_pipeline", "07_governance_legal", "08_identity_score", "09_meta_identity", "10_interoperability",
	"11_test_simulation", "12_tooling", "13_ui_layer", "14_zero_time_auth", "15_infra", "16_codex",
	"17_observability", "18_data_layer", "19_adapters", "20_foundation", "21_post_quantum_crypto",
	"22_datasets", "23_compliance", "24_meta_orchestration"}

// newTree makes a governance tree holding the real sample log and manifest.
func newTree(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	for _, m := range modules {
		mustMkdir(t, filepath.Join(root, m))
	}
	mustWrite(t, filepath.Join(root, "23_compliance/exceptions/root_level_exceptions.yaml"), []byte("- README.md\n"))
	mustWrite(t, filepath.Join(root, "README.md"), []byte("# SSID\n"))
	for src, dst := range map[string]string{"testdata/registry_events.log": tLog, "testdata/ipfs_anchor_manifest.json": tManifest} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, filepath.Join(root, dst), b)
	}
	return root
}

func mustMkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t testing.TB, path string, b []byte) {
	t.Helper()
	mustMkdir(t, filepath.Dir(path))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// runCLI runs the command in-process and returns exit code, stdout and stderr.
func runCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"ssid-anchor"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

var seeds sync.Map // test name -> uint64

// testSeed is the seed of a test's random content: SSID_TEST_SEED when set
// (to replay a failure), else the clock. It is logged once per test.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	if v, ok := seeds.Load(t.Name()); ok {
		return v.(uint64)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SSID_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SSID_TEST_SEED=%q: %v", s, err)
		}
		seed = v
	}
	if v, loaded := seeds.LoadOrStore(t.Name(), seed); loaded {
		return v.(uint64)
	}
	t.Logf("random seed %d (replay with SSID_TEST_SEED=%d)", seed, seed)
	return seed
}

var builds sync.Map // env var -> *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// toolBinary returns the binary named by env (set by `make test`), or builds
// pkg once per test process.
func toolBinary(t testing.TB, env, pkg string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	v, _ := builds.LoadOrStore(env, &buildResult{})
	br := v.(*buildResult)
	br.once.Do(func() {
		dir, err := os.MkdirTemp("", "ssid-anchor-bin-")
		if err != nil {
			br.err = err
			return
		}
		br.path = filepath.Join(dir, filepath.Base(pkg))
		out, err := exec.Command("go", "build", "-o", br.path, pkg).CombinedOutput()
		if err != nil {
			br.err = err
			br.path = string(out)
		}
	})
	if br.err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, br.err, br.path)
	}
	return br.path
}

func anchorBinary(t testing.TB) string {
	return toolBinary(t, "SSID_ANCHOR_BIN", "github.com/ssid/ssid-anchor/cmd/ssid-anchor")
}

func stockIPFS(t testing.TB) string {
	return toolBinary(t, "SSID_IPFS_BIN", "github.com/ipfs/kubo/cmd/ipfs")
}

// stockAdd runs stock `ipfs add -Q` of file in a throwaway repo initialised
// with the given kubo profiles (always including "test": loopback only).
func stockAdd(t testing.TB, ipfsRepo, profiles, file string) string {
	t.Helper()
	bin := stockIPFS(t)
	env := append(os.Environ(), "IPFS_PATH="+ipfsRepo)
	if _, err := os.Stat(filepath.Join(ipfsRepo, "config")); err != nil {
		cmd := exec.Command(bin, "init", "--profile", profiles)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ipfs init: %v\n%s", err, out)
		}
	}
	cmd := exec.Command(bin, "add", "--offline", "-Q", file)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ipfs add %s: %v", file, err)
	}
	return strings.TrimSpace(string(out))
}
