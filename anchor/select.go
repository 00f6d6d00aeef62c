package anchor

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// matches reports whether the rule applies to an event name.
func (r Rule) matches(event string) bool {
	ev := strings.ToLower(event)
	for _, m := range r.Match {
		if m == "*" || (m != "" && strings.Contains(ev, strings.ToLower(m))) {
			return true
		}
	}
	return false
}

// expand replaces the path placeholders in a glob.
func expandGlob(p tree.Paths, glob string) []string {
	one := map[string]string{
		"{events_log}":         p.EventsLog,
		"{release_bundles}":    p.ReleaseBundles,
		"{release_manifests}":  p.ReleaseManifests,
		"{compliance_reports}": p.ComplianceReports,
		"{dashboard_markdown}": p.DashboardMarkdown,
	}
	if v, ok := one[glob]; ok {
		return []string{v}
	}
	if glob == "{dashboard_csv}" {
		return p.DashboardCSV
	}
	return []string{glob}
}

var versionQuarterRe = regexp.MustCompile(`Q([1-4])-(\d{4})`)

// eventTags are the strings a versioned rule looks for in file names: the
// event's quarter ("2026-Q1"), its version, and the quarter hidden in a
// release version like "v4.2.0-Q1-2026".
func eventTags(e tree.Event) []string {
	var tags []string
	if q := e.Field("quarter"); q != "" {
		tags = append(tags, q)
	}
	if v := e.Field("version"); v != "" {
		tags = append(tags, v)
		if m := versionQuarterRe.FindStringSubmatch(v); m != nil {
			tags = append(tags, m[2]+"-Q"+m[1])
		}
	}
	return tags
}

// Select returns the root-relative files an event calls for, in rule order
// without duplicates. A glob that leaves the root is an error: the event or
// the config is refused rather than followed.
func Select(root tree.Root, p tree.Paths, rules []Rule, e tree.Event) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for i, r := range rules {
		if !r.matches(e.Name()) {
			continue
		}
		var files []string
		for _, g := range r.Globs {
			for _, pat := range expandGlob(p, g) {
				m, err := root.Glob(pat)
				if err != nil {
					return nil, fmt.Errorf("anchor.rules[%d] (%q) for event %q at line %d: %w", i, pat, e.Name(), e.Line, err)
				}
				files = append(files, m...)
			}
		}
		if r.Versioned {
			files = narrow(files, eventTags(e))
		}
		for _, f := range files {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// narrow keeps the files whose name contains one of tags; when the event
// names nothing or no file carries its tag, all files are kept (the seed's
// behaviour), so a release event never anchors less than before.
func narrow(files, tags []string) []string {
	if len(tags) == 0 {
		return files
	}
	var keep []string
	for _, f := range files {
		base := path.Base(f)
		for _, t := range tags {
			if strings.Contains(base, t) {
				keep = append(keep, f)
				break
			}
		}
	}
	if len(keep) == 0 {
		return files
	}
	return keep
}
