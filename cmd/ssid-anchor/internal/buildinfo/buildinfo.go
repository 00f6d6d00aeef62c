// Package buildinfo says which build of ssid-anchor is running: the module
// version, the commit it was built from and that commit's date, whether the
// tree had uncommitted changes, and the Go and kubo versions. It is the one
// place that reads runtime/debug.ReadBuildInfo; `version`, `status`, the
// daemon's /metrics and the release manifest all take an Info from here.
//
// The commit comes from one of two stamps. `go build` and `go install`
// record vcs.revision, vcs.time and vcs.modified themselves, but only where
// the module sits in a checkout whose .git is a directory: in a linked git
// worktree or a submodule (.git is a file) they record nothing, or an
// enclosing repository's commit (golang/go#58218). So `make build` asks git
// directly and sets the linker variables below with -X; when they are set
// they win, and Go's own stamp is the fallback for builds made without make.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Set by `make build` with -ldflags -X (see the Makefile): the commit
// (git rev-parse HEAD), its committer date in UTC (RFC 3339) and "true" when
// `git status --porcelain` listed anything. Package variables because the
// linker can only set those; nothing assigns them at run time.
var (
	linkCommit   string
	linkTime     string
	linkModified string
)

// KuboModule is the module path of the embedded IPFS implementation.
const KuboModule = "github.com/ipfs/kubo"

// Info is one build's identity. The JSON keys are those of
// `ssid-anchor version --json`.
type Info struct {
	// Version is the main module's version: a release tag, or for a build
	// of an untagged commit the pseudo-version go build stamps
	// (v0.0.0-<commit time>-<12 hex of the commit>, "+dirty" when modified);
	// "(devel)" when nothing says where the build came from.
	Version string `json:"version"`
	// Commit is the full commit hash; "" when the build carries none.
	Commit string `json:"commit"`
	// Date is the commit's date (vcs.time), UTC. A reproducible build
	// records no wall-clock build time, so this is the date that names it.
	Date string `json:"date"`
	// Modified says the tree had changes that are not in Commit.
	Modified    bool   `json:"modified"`
	GoVersion   string `json:"go_version"`
	KuboVersion string `json:"kubo_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// Read returns the running binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return from(bi, linker{commit: linkCommit, time: linkTime, modified: linkModified})
}

// linker holds the values `make build` stamps with -X.
type linker struct{ commit, time, modified string }

// from builds an Info from a binary's build information and the linker's
// stamp (either may be empty).
func from(bi *debug.BuildInfo, l linker) Info {
	in := Info{Version: "(devel)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		bi = &debug.BuildInfo{}
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	if v := bi.Main.Version; v != "" {
		in.Version = v
	}
	var goos, goarch string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.time":
			in.Date = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos != "" && goarch != "" {
		in.Platform = goos + "/" + goarch
	}
	if l.commit != "" {
		in.Commit, in.Date, in.Modified = l.commit, l.time, l.modified == "true"
	}
	if t, err := time.Parse(time.RFC3339, in.Date); err == nil {
		in.Date = t.UTC().Format(time.RFC3339)
	}
	if in.Version == "(devel)" && in.Commit != "" {
		in.Version = pseudoVersion(in)
	}
	for _, d := range bi.Deps {
		if d.Path != KuboModule {
			continue
		}
		in.KuboVersion = d.Version
		if r := d.Replace; r != nil {
			if r.Version != "" {
				in.KuboVersion = r.Version
			} else {
				in.KuboVersion = d.Version + " (replaced by " + r.Path + ")"
			}
		}
	}
	return in
}

// pseudoVersion is what go build (1.24 and later) stamps as the version of
// an untagged commit; used when the linker gave the commit and Go stamped
// "(devel)", so the two kinds of build name a commit the same way.
func pseudoVersion(in Info) string {
	v := "v0.0.0-"
	if t, err := time.Parse(time.RFC3339, in.Date); err == nil {
		v += t.UTC().Format("20060102150405") + "-"
	}
	v += in.Commit[:min(12, len(in.Commit))]
	if in.Modified {
		v += "+dirty"
	}
	return v
}

// CommitLabel is the commit as people and metric labels show it: the hash
// with "+dirty" when the tree was modified (as git describe --dirty marks
// it), or "unknown".
func (in Info) CommitLabel() string {
	if in.Commit == "" {
		return "unknown"
	}
	if in.Modified {
		return in.Commit + "+dirty"
	}
	return in.Commit
}

// String is the one-line form: "ssid-anchor v0.0.0-… (commit …, go1.26.8,
// kubo v0.43.1)".
func (in Info) String() string {
	parts := []string{"commit " + in.CommitLabel(), in.GoVersion}
	if in.KuboVersion != "" {
		parts = append(parts, "kubo "+in.KuboVersion)
	}
	return "ssid-anchor " + in.Version + " (" + strings.Join(parts, ", ") + ")"
}
