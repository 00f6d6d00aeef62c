package main

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
)

// TestShippedConfigs: configs/appliance.default.json is exactly the built-in
// defaults, and the example decodes strictly and validates.
func TestShippedConfigs(t *testing.T) {
	got, err := appconfig.Load("../../configs/appliance.default.json", true)
	if err != nil {
		t.Fatal(err)
	}
	if want := appconfig.Default(); !reflect.DeepEqual(got, want) {
		b, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("configs/appliance.default.json differs from the built-in defaults; expected:\n%s", b)
	}
	if _, err := appconfig.Load("../../configs/appliance.example.json", true); err != nil {
		t.Errorf("example config: %v", err)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"anchor":{"gateway_base":"ftp://x"}}`, "anchor.gateway_base"},
		{`{"anchor":{"cid_profile":"v2"}}`, "anchor.cid_profile"},
		{`{"anchor":{"checkpoint_interval":"soon"}}`, "anchor.checkpoint_interval"},
		{`{"node":{"profile":"open"}}`, "node.profile"},
		{`{"http":{"listen":"0.0.0.0:8089"}}`, "http.allow_remote"},
		{`{"anchr":{}}`, `unknown key "anchr"`},
		{"{\n\"paths\": {\"manifest\": 5}}", `line 2`},
		{`{"paths":{"manifest":"../m.json"}}`, "paths.manifest"},
		{`{"remote_pinning":{"services":[{"name":"x"}]}}`, "remote_pinning.services[0]"},
		// Nonsense that decoded to the defaults before (issue 10, item 12).
		{`null`, "must hold a JSON object, got null"},
		{`[]`, "must hold a JSON object, got a list"},
		{`{"anchor": null}`, "key anchor: null"},
		{`{"node": {"swarm": null}}`, "key node.swarm: null"},
		{"{\"http\": {}}\n{\"oops\": 1}", "line 2, column 1: text after the JSON object"},
		{`{"http": {}} trailing`, "text after the JSON object"},
		{`{"schedule": {"quarterly": "every quarter"}}`, "schedule.quarterly: \"every quarter\" is not a cron spec"},
		{`{"schedule": {"telemetry": "61 * * * *"}}`, "schedule.telemetry"},
		{`{"schedule": {"quarterly": "0 0 9 1 1,4,7,10 *"}}`, "schedule.quarterly"},
		{`{"remote_pinning":{"services":[{"name":"x","kind":"s3","endpoint":"https://x/","token_env":"T"}]}}`, "remote_pinning.services[0] (x).kind"},
		{`{"remote_pinning":{"services":[{"name":"web3-storage"}]}}`, "remote_pinning.services[0] (web3-storage).space: required"},
		{`{"remote_pinning":{"services":[{"name":"x","endpoint":"https://x/","token":"secret"}]}}`, `unknown key "remote_pinning.services[0].token"; did you mean "remote_pinning.services[0].token_env"?`},
	} {
		p := t.TempDir() + "/c.json"
		os.WriteFile(p, []byte(tc.body), 0o644)
		_, err := appconfig.Load(p, true)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want it to name %q and the file", tc.body, err, tc.want)
		}
		if code, _ := exitCode(err); code != exitUsage {
			t.Errorf("%s: exit code %d, want 2", tc.body, code)
		}
	}
	if _, err := appconfig.Load(t.TempDir()+"/missing.json", false); err != nil {
		t.Errorf("a missing default config must mean defaults: %v", err)
	}
	if _, err := appconfig.Load(t.TempDir()+"/missing.json", true); err == nil {
		t.Error("a missing --config file must be an error")
	}
}

// TestTelemetryNonsenseIsExit2: a telemetry config of null and a dashboard
// CSV with two compliance_score columns are clear errors with exit 2 that
// name the file and the key.
func TestTelemetryNonsenseIsExit2(t *testing.T) {
	root := telemetryTree(t, "100", nil)
	writeFile(t, root+"/"+tTelemetryConfig, []byte("null\n"))
	for _, args := range [][]string{{"--check-config"}, {}} {
		code, out, errb := tel(t, root, args...)
		if code != exitUsage || !strings.Contains(errb, tTelemetryConfig) || !strings.Contains(errb, "must hold a JSON object, got null") {
			t.Errorf("telemetry %v with a null config: exit %d\n%s%s", args, code, out, errb)
		}
	}
	writeFile(t, root+"/"+tTelemetryConfig, []byte(`{"thresholds": null}`))
	if code, out, errb := tel(t, root, "--check-config"); code != exitUsage || !strings.Contains(errb, "thresholds: null") {
		t.Errorf("a null section: exit %d\n%s%s", code, out, errb)
	}

	root = telemetryTree(t, "100", nil)
	writeFile(t, root+"/"+tDashboardCSV, []byte("quarter,date,compliance_score,violations,compliance_score\n2026-Q1,2026-01-31,100,0,12\n"))
	code, out, errb := tel(t, root)
	if code != exitUsage || !strings.Contains(errb, tDashboardCSV+":1:5") || !strings.Contains(errb, `column "compliance_score" appears twice (columns 3 and 5)`) {
		t.Errorf("two compliance_score columns: exit %d\n%s%s", code, out, errb)
	}
}
