package anchor

import (
	"fmt"
	"net/url"
	"strings"
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

// Rule selects files for events whose name contains any of Match ("*"
// matches every event). Globs are root-relative; the placeholders
// {events_log}, {release_bundles}, {release_manifests}, {compliance_reports},
// {dashboard_markdown} and {dashboard_csv} stand for the configured paths.
// With Versioned, only matches whose name contains the event's quarter or
// version are taken when the event names one and some file matches it.
type Rule struct {
	Match     []string `json:"match"`
	Globs     []string `json:"globs"`
	Versioned bool     `json:"versioned,omitempty"`
}

// Config is the anchor section of the appliance config.
type Config struct {
	Rules       []Rule `json:"rules"`
	GatewayBase string `json:"gateway_base"`
	CIDProfile  string `json:"cid_profile"`
	// BlueprintVersion is written into each record's blueprint_version.
	BlueprintVersion string `json:"blueprint_version"`
}

// DefaultRules are the seed's event table, with its bugs fixed: quarterly
// events also take the dashboard CSV and compliance reports, and release
// files are narrowed to the event's version or quarter.
func DefaultRules() []Rule {
	return []Rule{
		{Match: []string{"*"}, Globs: []string{"{events_log}"}},
		{Match: []string{"release", "quarterly"}, Globs: []string{"{release_bundles}", "{release_manifests}"}, Versioned: true},
		{Match: []string{"quarterly"}, Globs: []string{"{dashboard_csv}", "{compliance_reports}"}},
		{Match: []string{"governance", "dashboard"}, Globs: []string{"{dashboard_markdown}", "{dashboard_csv}"}},
	}
}

// DefaultConfig is the anchor section with every default filled in.
func DefaultConfig() Config {
	return Config{
		Rules:            DefaultRules(),
		GatewayBase:      "https://ipfs.io/ipfs/",
		CIDProfile:       "kubo-default",
		BlueprintVersion: "v4.3",
	}
}

// Validate names the key and the rule broken.
func (c Config) Validate() error {
	for i, r := range c.Rules {
		if len(r.Match) == 0 {
			return fmt.Errorf("anchor.rules[%d].match: must list at least one substring or \"*\"", i)
		}
		if len(r.Globs) == 0 {
			return fmt.Errorf("anchor.rules[%d].globs: must list at least one path or glob", i)
		}
		for j, g := range r.Globs {
			if strings.HasPrefix(g, "/") {
				return fmt.Errorf("anchor.rules[%d].globs[%d]: %q must be relative to the root", i, j, g)
			}
		}
	}
	u, err := url.Parse(c.GatewayBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("anchor.gateway_base: must be an http(s) URL like https://ipfs.io/ipfs/, got %q", c.GatewayBase)
	}
	switch c.CIDProfile {
	case "", "kubo-default", "unixfs-v1-2025":
	default:
		return fmt.Errorf("anchor.cid_profile: must be \"kubo-default\" or \"unixfs-v1-2025\", got %q", c.CIDProfile)
	}
	return nil
}

// GatewayURL is the record's ipfs_gateway_url for a CID.
func (c Config) GatewayURL(cid string) string {
	base := c.GatewayBase
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base + cid
}
