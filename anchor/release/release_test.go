package release

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

func TestLastEnded(t *testing.T) {
	for _, tc := range []struct {
		now  time.Time
		want string
	}{
		{time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC), "2026-Q4"}, // the scheduled run
		{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), "2026-Q4"},
		{time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), "2026-Q3"},
		{time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC), "2026-Q1"},
		{time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC), "2026-Q2"},
		{time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC), "2026-Q3"},
		// 09:00 local on Jan 1 in UTC+14 is still Dec 31 in UTC.
		{time.Date(2027, 1, 1, 9, 0, 0, 0, time.FixedZone("UTC+14", 14*3600)), "2026-Q3"},
	} {
		if got := LastEnded(tc.now).String(); got != tc.want {
			t.Errorf("LastEnded(%v) = %s, want %s", tc.now, got, tc.want)
		}
	}
}

func TestQuarterBounds(t *testing.T) {
	q, err := ParseQuarter("2026-Q4")
	if err != nil {
		t.Fatal(err)
	}
	if got := q.End(); !got.Equal(time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)) {
		t.Errorf("End = %v", got)
	}
	if got := q.Start(); !got.Equal(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Start = %v", got)
	}
	if q.Next().String() != "2027-Q1" || q.Prev().String() != "2026-Q3" {
		t.Errorf("Next %s Prev %s", q.Next(), q.Prev())
	}
	for _, bad := range []string{"2026-Q5", "2026Q1", "26-Q1", "2026-q1", ""} {
		if _, err := ParseQuarter(bad); err == nil {
			t.Errorf("ParseQuarter(%q) accepted", bad)
		}
	}
	if v := Version("v4.3", q); v != "v4.3-Q4-2026" {
		t.Errorf("Version = %s", v)
	}
	if v := Version("4.2.0", q); v != "v4.2.0-Q4-2026" {
		t.Errorf("Version = %s", v)
	}
}

func TestMSDosTime(t *testing.T) {
	d, tm := msDosTime(time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC))
	// 2026-03-31: (46<<9)|(3<<5)|31; 23:59:58: (23<<11)|(59<<5)|29.
	if d != 46<<9|3<<5|31 || tm != 23<<11|59<<5|29 {
		t.Errorf("got %#x %#x", d, tm)
	}
	if d, tm := msDosTime(time.Unix(0, 0)); d != 0<<9|1<<5|1 || tm != 0 {
		t.Errorf("1970 not clamped to 1980-01-01: %#x %#x", d, tm)
	}
}

func write(t *testing.T, root, rel, body string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGitCommit reads HEAD without a git binary: loose ref, packed ref,
// detached HEAD, and a .git that is not there.
func TestGitCommit(t *testing.T) {
	const sha = "7050f93a1b2c3d4e5f60718293a4b5c6d7e8f901"
	const sha2 = "be922a7c28e242a11c1bfea5d0a6b36a66dd9143"
	dir := t.TempDir()
	open := func() tree.Root {
		r, err := tree.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if got := gitCommit(open()); got != "unknown" {
		t.Errorf("no .git: %s", got)
	}
	write(t, dir, ".git/HEAD", "ref: refs/heads/main\n")
	write(t, dir, ".git/packed-refs", "# pack-refs with: peeled fully-peeled sorted\n"+sha2+" refs/heads/main\n")
	if got := gitCommit(open()); got != sha2 {
		t.Errorf("packed ref: %s", got)
	}
	write(t, dir, ".git/refs/heads/main", sha+"\n")
	if got := gitCommit(open()); got != sha {
		t.Errorf("loose ref: %s", got)
	}
	write(t, dir, ".git/HEAD", sha2+"\n")
	if got := gitCommit(open()); got != sha2 {
		t.Errorf("detached: %s", got)
	}
	write(t, dir, ".git/HEAD", "ref: ../../../etc/passwd\n")
	if got := gitCommit(open()); got != "unknown" {
		t.Errorf("escaping ref: %s", got)
	}
}

// TestGitRepository: the origin URL without the token a CI checkout may
// embed in it.
func TestGitRepository(t *testing.T) {
	for remote, want := range map[string]string{
		"https://x-access-token:ghs_secret@github.com/EduBrainBoost/SSID.git": "https://github.com/EduBrainBoost/SSID",
		"git@github.com:EduBrainBoost/SSID.git":                               "https://github.com/EduBrainBoost/SSID",
		"https://github.com/EduBrainBoost/SSID":                               "https://github.com/EduBrainBoost/SSID",
	} {
		dir := t.TempDir()
		write(t, dir, ".git/config", "[core]\n\tbare = false\n[remote \"upstream\"]\n\turl = https://example.org/other.git\n[remote \"origin\"]\n\turl = "+remote+"\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n")
		r, err := tree.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := gitRepository(r); got != want {
			t.Errorf("%s: got %s, want %s", remote, got, want)
		}
	}
}
