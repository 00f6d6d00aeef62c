package telemetry

import (
	"fmt"

	"github.com/ssid/ssid-anchor/telemetry/notify"
)

// Alert names.
const (
	AlertScore      = "compliance_score"
	AlertViolations = "violations"
)

// Assessment is the trend and the thresholds applied to one reading.
type Assessment struct {
	Score    float64  `json:"compliance_score"`
	Previous *float64 `json:"previous_score"`
	// Change is current − previous; negative is a drop.
	Change *float64 `json:"change"`
	Trend  string   `json:"trend"` // first, stable, improving, declining

	// ScoreLevel is critical, warning or "" for the score alert.
	ScoreLevel   notify.Level `json:"score_level,omitempty"`
	ScoreReasons []string     `json:"score_reasons,omitempty"`

	Violations       int          `json:"violations"`
	ViolationLevel   notify.Level `json:"violation_level,omitempty"`
	ViolationReasons []string     `json:"violation_reasons,omitempty"`
}

// Evaluate applies every threshold: the score alert is critical when the
// score is below compliance_score_critical or dropped by at least
// score_drop_critical, warning when below compliance_score_min or dropped
// by at least score_drop_warning; the violations alert is critical when
// violations exceed max_violations. previous is the previous distinct
// score, nil at the first reading.
func Evaluate(t Thresholds, cur Reading, previous *float64) Assessment {
	a := Assessment{Score: cur.Score, Previous: previous, Violations: cur.Violations, Trend: "first"}
	drop := 0.0
	if previous != nil {
		c := cur.Score - *previous
		a.Change = &c
		drop = -c
		switch {
		case c < 0:
			a.Trend = "declining"
		case c > 0:
			a.Trend = "improving"
		default:
			a.Trend = "stable"
		}
	}
	var crit, warn []string
	if cur.Score < t.ComplianceScoreCritical {
		crit = append(crit, fmt.Sprintf("score %s is below compliance_score_critical %s", num(cur.Score), num(t.ComplianceScoreCritical)))
	} else if cur.Score < t.ComplianceScoreMin {
		warn = append(warn, fmt.Sprintf("score %s is below compliance_score_min %s", num(cur.Score), num(t.ComplianceScoreMin)))
	}
	if previous != nil && drop > 0 {
		if drop >= t.ScoreDropCritical {
			crit = append(crit, fmt.Sprintf("score dropped by %s from %s (score_drop_critical %s)", num(drop), num(*previous), num(t.ScoreDropCritical)))
		} else if drop >= t.ScoreDropWarning {
			warn = append(warn, fmt.Sprintf("score dropped by %s from %s (score_drop_warning %s)", num(drop), num(*previous), num(t.ScoreDropWarning)))
		}
	}
	switch {
	case len(crit) > 0:
		a.ScoreLevel, a.ScoreReasons = notify.LevelCritical, append(crit, warn...)
	case len(warn) > 0:
		a.ScoreLevel, a.ScoreReasons = notify.LevelWarning, warn
	}
	if cur.Violations > t.MaxViolations {
		a.ViolationLevel = notify.LevelCritical
		a.ViolationReasons = []string{fmt.Sprintf("%d violations exceed max_violations %d", cur.Violations, t.MaxViolations)}
	}
	return a
}
