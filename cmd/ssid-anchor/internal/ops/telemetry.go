package ops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/telemetry"
	"github.com/ssid/ssid-anchor/telemetry/notify"
)

// TelemetrySetup is what every telemetry mode needs: the tree, the
// config's path in it, the parsed config and why it is invalid (nil when
// it is not).
type TelemetrySetup struct {
	Root      tree.Root
	ConfigRel string
	Config    telemetry.Config
	Invalid   error
}

// LoadTelemetryConfig reads, parses and validates the config; a parse
// error is returned, a validation error is kept in Invalid so
// --check-config can still show the rest. On success the caller owns
// s.Root and closes it; on error nothing is left open.
func LoadTelemetryConfig(e Env) (TelemetrySetup, error) {
	root, err := tree.OpenRoot(e.Root)
	if err != nil {
		return TelemetrySetup{}, UsageError{err}
	}
	s, err := LoadTelemetryConfigIn(e, root)
	if err != nil {
		root.Close()
		return TelemetrySetup{}, err
	}
	return s, nil
}

// LoadTelemetryConfigIn is LoadTelemetryConfig on a root the caller has
// open already (the console's page view); the caller keeps owning it.
func LoadTelemetryConfigIn(e Env, root tree.Root) (TelemetrySetup, error) {
	var s TelemetrySetup
	s.Root, s.ConfigRel = root, e.Config.Paths.TelemetryConfig
	b, err := appconfig.ReadTreeFile(root, s.ConfigRel)
	if errors.Is(err, appconfig.ErrTooLarge) {
		return s, Usagef("telemetry config %s: %w", s.ConfigRel, err)
	}
	if errors.Is(err, tree.ErrOutsideRoot) {
		return s, Usagef("paths.telemetry_config: %v", err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return s, Usagef("telemetry config %s not found under %s (set paths.telemetry_config in the appliance config, or create it from the SSID sample)", s.ConfigRel, root.Dir())
	}
	if err != nil {
		return s, fmt.Errorf("reading telemetry config: %w", err)
	}
	cfg, err := telemetry.ParseConfig(b)
	if err != nil {
		return s, Usagef("telemetry config %s: %v", s.ConfigRel, err)
	}
	cfg.ApplyEnv(e.getenv)
	s.Config = cfg
	s.Invalid = cfg.Validate()
	return s, nil
}

// InvalidTelemetryConfig is the usage error for a config that does not
// validate, one problem a line.
func InvalidTelemetryConfig(rel string, err error) error {
	lines := strings.Split(err.Error(), "\n")
	if len(lines) == 1 {
		return Usagef("telemetry config %s: %s", rel, lines[0])
	}
	return Usagef("telemetry config %s has %d problems:\n  %s", rel, len(lines), strings.Join(lines, "\n  "))
}

// TelemetryMonitor is the monitor of s: its channels, paths and clock.
func TelemetryMonitor(e Env, s TelemetrySetup) *telemetry.Monitor {
	opts := notify.Options{Logger: e.log(), UserAgent: "ssid-anchor-telemetry", Clock: e.Clock}
	return &telemetry.Monitor{
		Config: s.Config, Root: s.Root,
		Paths:    telemetry.Paths{DashboardCSV: e.Config.Paths.DashboardCSV, State: e.Config.Paths.TelemetryState, EventsLog: e.Config.Paths.EventsLog},
		Channels: telemetry.BuildChannels(s.Config, opts, nil),
		Now:      e.now, Log: e.log(),
	}
}

// TelemetryError makes a dashboard CSV whose header is wrong (a missing or
// doubled column) a usage error, exit 2, like a config error: the operator
// must fix the file's layout.
func TelemetryError(err error) error {
	var ce *telemetry.CSVError
	if errors.As(err, &ce) && ce.Header {
		return UsageError{err}
	}
	return err
}

// TelemetryCheck is one check with the current config, as the daemon's
// telemetry job runs it: nil, nil when telemetry is disabled.
func TelemetryCheck(ctx context.Context, e Env) (*telemetry.Report, error) {
	s, err := LoadTelemetryConfig(e)
	if err != nil {
		return nil, err
	}
	defer s.Root.Close()
	if s.Invalid != nil {
		return nil, InvalidTelemetryConfig(s.ConfigRel, s.Invalid)
	}
	if !s.Config.Enabled {
		return nil, nil
	}
	return TelemetryMonitor(e, s).Check(ctx, false)
}
