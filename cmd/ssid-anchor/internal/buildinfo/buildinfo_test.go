package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

const commit = "496f100a5b8c1d2e3f40516273849a0b1c2d3e4f"

func settings(kv ...string) []debug.BuildSetting {
	var out []debug.BuildSetting
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

func TestFrom(t *testing.T) {
	kubo := &debug.Module{Path: KuboModule, Version: "v0.43.1"}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		l    linker
		want Info
	}{
		{
			name: "go build in a clone (Go's own vcs stamp)",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20260105171000-496f100a5b8c"},
				Deps:     []*debug.Module{{Path: "github.com/ipfs/boxo", Version: "v0.35.0"}, kubo},
				Settings: settings("GOOS", "linux", "GOARCH", "arm64", "vcs.revision", commit, "vcs.time", "2026-01-05T17:10:00Z", "vcs.modified", "false")},
			want: Info{Version: "v0.0.0-20260105171000-496f100a5b8c", Commit: commit, Date: "2026-01-05T17:10:00Z", GoVersion: "go1.26.8", KuboVersion: "v0.43.1", Platform: "linux/arm64"},
		},
		{
			name: "make build in a worktree (linker stamp, Go stamped nothing)",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Deps: []*debug.Module{kubo}},
			l:    linker{commit: commit, time: "2026-01-05T18:10:00+01:00", modified: "true"},
			want: Info{Version: "v0.0.0-20260105171000-496f100a5b8c+dirty", Commit: commit, Date: "2026-01-05T17:10:00Z", Modified: true,
				GoVersion: "go1.26.8", KuboVersion: "v0.43.1", Platform: runtime.GOOS + "/" + runtime.GOARCH},
		},
		{
			name: "the linker's stamp wins over an enclosing repository's",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20250101000000-aaaaaaaaaaaa+dirty"}, Deps: []*debug.Module{kubo},
				Settings: settings("vcs.revision", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "vcs.time", "2025-01-01T00:00:00Z", "vcs.modified", "true")},
			l: linker{commit: commit, time: "2026-01-05T17:10:00Z", modified: "false"},
			// The version Go stamped is kept (it is what go version -m
			// shows); commit, date and modified are git's.
			want: Info{Version: "v0.0.0-20250101000000-aaaaaaaaaaaa+dirty", Commit: commit, Date: "2026-01-05T17:10:00Z",
				GoVersion: "go1.26.8", KuboVersion: "v0.43.1", Platform: runtime.GOOS + "/" + runtime.GOARCH},
		},
		{
			name: "a tagged release installed with go install",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}, Deps: []*debug.Module{kubo}},
			want: Info{Version: "v1.2.0", GoVersion: "go1.26.8", KuboVersion: "v0.43.1", Platform: runtime.GOOS + "/" + runtime.GOARCH},
		},
		{
			name: "kubo replaced by a fork and by a local copy",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Deps: []*debug.Module{
				{Path: KuboModule, Version: "v0.43.1", Replace: &debug.Module{Path: "example.org/kubo", Version: "v0.43.2-fix"}}}},
			want: Info{Version: "(devel)", GoVersion: "go1.26.8", KuboVersion: "v0.43.2-fix", Platform: runtime.GOOS + "/" + runtime.GOARCH},
		},
		{
			name: "kubo replaced by a directory",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Deps: []*debug.Module{
				{Path: KuboModule, Version: "v0.43.1", Replace: &debug.Module{Path: "../kubo"}}}},
			want: Info{Version: "(devel)", GoVersion: "go1.26.8", KuboVersion: "v0.43.1 (replaced by ../kubo)", Platform: runtime.GOOS + "/" + runtime.GOARCH},
		},
		{
			name: "no build information at all",
			want: Info{Version: "(devel)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := from(tc.bi, tc.l); got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestLabels(t *testing.T) {
	in := Info{Version: "v0.0.0-20260105171000-496f100a5b8c+dirty", Commit: commit, Modified: true, GoVersion: "go1.26.8", KuboVersion: "v0.43.1"}
	if got, want := in.CommitLabel(), commit+"+dirty"; got != want {
		t.Errorf("CommitLabel = %q, want %q", got, want)
	}
	if got, want := in.String(), "ssid-anchor v0.0.0-20260105171000-496f100a5b8c+dirty (commit "+commit+"+dirty, go1.26.8, kubo v0.43.1)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := (Info{}).CommitLabel(); got != "unknown" {
		t.Errorf("no commit: %q", got)
	}
}
