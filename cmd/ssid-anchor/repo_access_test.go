package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAnotherUsersRepoIsExit3 is issue 25.16: a user who may not open the
// repo (it belongs to the daemon's service account) got exit 2 ("reading
// config ... permission denied", a config error) or exit 1 ("lock
// permission denied"), not the documented exit 3 with the hint to run as
// the repo's owner. As root the commands run as uid 65534 against root's
// repo, in each state a repo can refuse another user in: the repo
// directory closed (0700, as init makes it), its kubo config unreadable,
// its lock not creatable, its appliance.json unreadable. Not as root, the
// test's own user is refused by the repo's mode instead.
func TestAnotherUsersRepoIsExit3(t *testing.T) {
	base, err := os.MkdirTemp("", "ssid-anchor-uid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(base, 0o700); os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil { // others may reach what is inside
		t.Fatal(err)
	}
	bin := filepath.Join(base, "ssid-anchor")
	if err := copyFile(anchorBinary(t), bin); err != nil {
		t.Fatal(err)
	}
	chmodOrFail(t, bin, 0o755)
	root := newTree(t)
	chmodOrFail(t, filepath.Dir(root), 0o755) // the tree is readable to others, as a checkout is
	chmodOrFail(t, root, 0o755)
	repo := filepath.Join(base, "repo")
	if code, _, stderr := runCLI(t, "--repo", repo, "init", "--profile", "air-gapped"); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	asRoot := os.Getuid() == 0
	run := func(args ...string) (int, string) {
		cmd := exec.Command(bin, append([]string{"--root", root, "--repo", repo}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+base)
		if asRoot {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			if _, ok := err.(*exec.ExitError); !ok {
				t.Fatal(err)
			}
		}
		return cmd.ProcessState.ExitCode(), errb.String()
	}
	chmod := func(p string, m os.FileMode) { chmodOrFail(t, p, m) }
	appliance := filepath.Join(repo, "appliance.json")
	// init of an initialised repo only reads its identity: it works while
	// the kubo config is readable.
	repoCmds := [][]string{{"status"}, {"anchor"}, {"verify"}, {"pins"}, {"export", "--car", filepath.Join(base, "cars")}}
	withInit := append(append([][]string{}, repoCmds...), []string{"init"})
	states := []struct {
		name  string
		cmds  [][]string
		setup func()
	}{
		{"repo directory closed", withInit, func() { chmod(repo, 0o700) }},
		{"kubo config unreadable", withInit, func() { chmod(repo, 0o755); chmod(filepath.Join(repo, "config"), 0o600) }},
		{"lock not creatable", repoCmds, func() { chmod(repo, 0o755); chmod(filepath.Join(repo, "config"), 0o644) }},
		{"appliance.json unreadable", withInit, func() {
			chmod(repo, 0o755)
			mustWrite(t, appliance, []byte("{}\n"))
			chmod(appliance, 0o600)
		}},
	}
	if !asRoot {
		t.Logf("not root: the repo's mode refuses this test's own user (uid %d)", os.Getuid())
		states = states[:1]
		states[0].setup = func() { chmod(repo, 0o000) }
	}
	t.Cleanup(func() { os.Chmod(repo, 0o700) })
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			st.setup()
			for _, args := range st.cmds {
				code, stderr := run(args...)
				want := "sudo -u root"
				if !asRoot {
					want = "chmod u+rw"
				}
				if code != exitRepo || !strings.Contains(stderr, "permission denied") || !strings.Contains(stderr, "hint: ") || !strings.Contains(stderr, want) {
					t.Errorf("%s: exit %d, want 3 with the hint %q:\n%s", args[0], code, want, stderr)
				}
			}
		})
	}
	// The repo's owner is not affected.
	chmod(repo, 0o700)
	os.Remove(appliance)
	if code, _, stderr := runCLI(t, "--root", root, "--repo", repo, "status"); code != 0 {
		t.Fatalf("status as the repo's owner: %d %s", code, stderr)
	}
}

func chmodOrFail(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies src to dst (the test's copy of the binary).
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
