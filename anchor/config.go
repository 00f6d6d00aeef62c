package anchor

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Rule selects files for events whose name contains any of Match ("*"
// matches every event). Globs are root-relative doublestar patterns (`**`
// matches any depth, {a,b} alternatives); a glob that is exactly one of the
// placeholders {events_log}, {release_bundles}, {release_manifests},
// {compliance_reports}, {dashboard_markdown} or {dashboard_csv} stands for
// the configured paths. Any other {name} is a config error.
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
	// Checkpoint is how often a long run saves its progress (pin + manifest),
	// as a Go duration; "0s" saves only at the end.
	Checkpoint string `json:"checkpoint_interval"`
}

// CheckpointEvery parses Checkpoint; Validate has checked it.
func (c Config) CheckpointEvery() time.Duration {
	d, _ := time.ParseDuration(c.Checkpoint)
	return d
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
		Checkpoint:       "5s",
	}
}

// Validate names the key and the rule broken.
func (c Config) Validate() error {
	if len(c.Rules) == 0 {
		return fmt.Errorf("anchor.rules: must list at least one rule (an empty list would use up every event with nothing anchored; remove the key to get the defaults)")
	}
	for i, r := range c.Rules {
		if len(r.Match) == 0 {
			return fmt.Errorf("anchor.rules[%d].match: must list at least one substring or \"*\"", i)
		}
		if len(r.Globs) == 0 {
			return fmt.Errorf("anchor.rules[%d].globs: must list at least one path or glob", i)
		}
		for j, g := range r.Globs {
			if err := checkGlob(g); err != nil {
				return fmt.Errorf("anchor.rules[%d].globs[%d]: %w", i, j, err)
			}
		}
	}
	u, err := url.Parse(c.GatewayBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("anchor.gateway_base: must be an http(s) URL like https://ipfs.io/ipfs/, got %q", c.GatewayBase)
	}
	if d, err := time.ParseDuration(c.Checkpoint); c.Checkpoint != "" && (err != nil || d < 0) {
		return fmt.Errorf("anchor.checkpoint_interval: must be a duration like \"5s\" or \"0s\", got %q", c.Checkpoint)
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
