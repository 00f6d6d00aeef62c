package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
)

// readmeSchedules are the schedule forms the README shows: every code span
// that is a robfig/cron descriptor or a 5-field cron spec.
func readmeSchedules(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	descriptor := regexp.MustCompile(`^@(every [0-9a-zµ.]+|hourly|daily|midnight|weekly|monthly|yearly|annually)$`)
	cron5 := regexp.MustCompile(`^[0-9*/,-]+( [0-9*/,-]+){4}$`)
	var out []string
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(string(b), -1) {
		if s := m[1]; (descriptor.MatchString(s) || cron5.MatchString(s)) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestREADMESchedulesLoad: every schedule form the README shows, and the
// one `status` prints for the default telemetry interval, is accepted by
// the config loader for schedule.quarterly and schedule.telemetry (issue
// 19.6: main's loader refused every descriptor, `@every 10m` included).
func TestREADMESchedulesLoad(t *testing.T) {
	forms := readmeSchedules(t)
	for _, want := range []string{"0 9 1 1,4,7,10 *", "@every 10m", "@hourly", "@daily", "@weekly", "@monthly", "@yearly"} {
		if !slices.Contains(forms, want) {
			t.Fatalf("the README no longer shows %q (found %q); keep this test's list and the README's config reference in step", want, forms)
		}
	}
	forms = append(forms, "@every "+(300*time.Second).String()) // as `status` prints the telemetry job
	for _, spec := range forms {
		for _, key := range []string{"quarterly", "telemetry"} {
			p := filepath.Join(t.TempDir(), "appliance.json")
			if err := os.WriteFile(p, []byte(`{"schedule": {"`+key+`": `+strconv.Quote(spec)+`}}`), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := appconfig.Load(p, true)
			if err != nil {
				t.Errorf("schedule.%s %q: %v", key, spec, err)
				continue
			}
			if got := map[string]string{"quarterly": cfg.Schedule.Quarterly, "telemetry": cfg.Schedule.Telemetry}[key]; got != spec {
				t.Errorf("schedule.%s = %q, want %q", key, got, spec)
			}
		}
	}
	t.Logf("README schedule forms: %q", forms)
}
