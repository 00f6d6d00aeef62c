package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/anchor/release"
	"github.com/ssid/ssid-anchor/anchor/tree"
)

// BundleOptions are `bundle`'s (and the bundle step of `release`).
type BundleOptions struct {
	Quarter string // YYYY-QN; "" is the last quarter that ended
	// GeneratorVersion is the binary's version, recorded in the release
	// manifest.
	GeneratorVersion string
}

// ReleaseQuarter picks the quarter: the flag, else the last one that ended.
func ReleaseQuarter(flag string, now time.Time) (release.Quarter, error) {
	if flag == "" {
		return release.LastEnded(now), nil
	}
	q, err := release.ParseQuarter(flag)
	if err != nil {
		return q, Usagef("--quarter: %v", err)
	}
	return q, nil
}

// SourceDateEpoch reads SOURCE_DATE_EPOCH (reproducible-builds.org).
func SourceDateEpoch(getenv func(string) string) (*time.Time, error) {
	v := strings.TrimSpace(getenv("SOURCE_DATE_EPOCH"))
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, Usagef("SOURCE_DATE_EPOCH: want a Unix time in whole seconds, got %q", v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

// Bundle builds the quarterly release bundle (reproducible zip), its
// manifest and release event: `bundle`, and the bundle step of `release`.
func Bundle(ctx context.Context, e Env, o BundleOptions) (*release.Result, error) {
	q, err := ReleaseQuarter(o.Quarter, e.now())
	if err != nil {
		return nil, err
	}
	sde, err := SourceDateEpoch(os.Getenv)
	if err != nil {
		return nil, err
	}
	root, err := tree.OpenRoot(e.Root)
	if err != nil {
		return nil, Usagef("--root: %v", err)
	}
	res, err := release.Build(ctx, release.Options{
		Root: root, Paths: e.Config.Paths, Quarter: q, Blueprint: e.Config.Anchor.BlueprintVersion,
		SourceDate: sde, Now: e.now, Log: e.log(),
		GeneratorVersion: o.GeneratorVersion,
	})
	if errors.Is(err, tree.ErrLocked) {
		return nil, fmt.Errorf("another ssid-anchor process is building a release in %s; wait for it and run again: %w", root.Dir(), err)
	}
	return res, err
}
