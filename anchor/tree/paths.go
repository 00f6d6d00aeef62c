package tree

import (
	"fmt"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Paths are the governance files, relative to the root (SPEC section 1).
type Paths struct {
	EventsLog         string   `json:"events_log"`
	Manifest          string   `json:"manifest"`
	ReleaseBundles    string   `json:"release_bundles"`
	ReleaseManifests  string   `json:"release_manifests"`
	ComplianceReports string   `json:"compliance_reports"`
	DashboardMarkdown string   `json:"dashboard_markdown"`
	DashboardCSV      []string `json:"dashboard_csv"`
	TelemetryConfig   string   `json:"telemetry_config"`
	TelemetryState    string   `json:"telemetry_state"`
	ReleaseEvents     string   `json:"release_events"`
}

// DefaultPaths match the SSID repository.
func DefaultPaths() Paths {
	return Paths{
		EventsLog:         "24_meta_orchestration/registry/logs/registry_events.log",
		Manifest:          "24_meta_orchestration/registry/manifests/ipfs_anchor_manifest.json",
		ReleaseBundles:    "05_documentation/releases/*.zip",
		ReleaseManifests:  "24_meta_orchestration/registry/manifests/quarterly_release_manifest_*.json",
		ComplianceReports: "05_documentation/reports/*/COMPLIANCE_REPORT.md",
		DashboardMarkdown: "05_documentation/reports/dashboard/SSID_Governance_Dashboard.md",
		DashboardCSV:      []string{"05_documentation/reports/dashboard/dashboard_data.csv", "07_governance_legal/dashboard_data.csv"},
		TelemetryConfig:   "07_governance_legal/telemetry_config.json",
		TelemetryState:    "24_meta_orchestration/registry/logs/telemetry_state.json",
		ReleaseEvents:     "24_meta_orchestration/registry/events",
	}
}

// CheckRelative refuses absolute paths and .. components: everything the
// tool reads because of config must stay inside the root.
func CheckRelative(p string) error {
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "\\") || (len(p) > 1 && p[1] == ':') {
		return fmt.Errorf("%q must be relative to the root (%w)", p, ErrOutsideRoot)
	}
	for _, part := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return fmt.Errorf("%q climbs out of the root (..); paths must stay inside it (%w)", p, ErrOutsideRoot)
		}
	}
	return nil
}

// Validate checks that every path is relative and stays inside the root.
func (p Paths) Validate() error {
	for _, kv := range []struct{ key, v string }{
		{"events_log", p.EventsLog}, {"manifest", p.Manifest}, {"release_bundles", p.ReleaseBundles},
		{"release_manifests", p.ReleaseManifests}, {"compliance_reports", p.ComplianceReports},
		{"dashboard_markdown", p.DashboardMarkdown}, {"telemetry_config", p.TelemetryConfig},
		{"telemetry_state", p.TelemetryState}, {"release_events", p.ReleaseEvents},
	} {
		if kv.v == "" {
			return fmt.Errorf("paths.%s: must not be empty", kv.key)
		}
		if err := CheckRelative(kv.v); err != nil {
			return fmt.Errorf("paths.%s: %w", kv.key, err)
		}
	}
	for _, kv := range []struct{ key, v string }{
		{"release_bundles", p.ReleaseBundles}, {"release_manifests", p.ReleaseManifests}, {"compliance_reports", p.ComplianceReports},
	} {
		if !doublestar.ValidatePattern(kv.v) {
			return fmt.Errorf("paths.%s: invalid pattern %q (check [ ], { } and \\ escapes)", kv.key, kv.v)
		}
	}
	for i, v := range p.DashboardCSV {
		if err := CheckRelative(v); err != nil {
			return fmt.Errorf("paths.dashboard_csv[%d]: %w", i, err)
		}
	}
	return nil
}
