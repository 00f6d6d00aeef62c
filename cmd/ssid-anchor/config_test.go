package main

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestShippedConfigs: configs/appliance.default.json is exactly the built-in
// defaults, and the example decodes strictly and validates.
func TestShippedConfigs(t *testing.T) {
	got, err := loadApplianceConfig("../../configs/appliance.default.json", true)
	if err != nil {
		t.Fatal(err)
	}
	if want := defaultApplianceConfig(); !reflect.DeepEqual(got, want) {
		b, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("configs/appliance.default.json differs from the built-in defaults; expected:\n%s", b)
	}
	if _, err := loadApplianceConfig("../../configs/appliance.example.json", true); err != nil {
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
		{`{"anchr":{}}`, `unknown field "anchr"`},
		{"{\n\"paths\": {\"manifest\": 5}}", `line 2`},
		{`{"paths":{"manifest":"../m.json"}}`, "paths.manifest"},
		{`{"remote_pinning":{"services":[{"name":"x"}]}}`, "remote_pinning.services[0]"},
		{`{"remote_pinning":{"services":[{"name":"x","kind":"s3","endpoint":"https://x/","token_env":"T"}]}}`, "remote_pinning.services[0] (x).kind"},
		{`{"remote_pinning":{"services":[{"name":"web3-storage"}]}}`, "remote_pinning.services[0] (web3-storage).space: required"},
		{`{"remote_pinning":{"services":[{"name":"x","endpoint":"https://x/","token":"secret"}]}}`, `unknown field "token"`},
	} {
		p := t.TempDir() + "/c.json"
		os.WriteFile(p, []byte(tc.body), 0o644)
		_, err := loadApplianceConfig(p, true)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want it to name %q and the file", tc.body, err, tc.want)
		}
		if code, _ := exitCode(err); code != exitUsage {
			t.Errorf("%s: exit code %d, want 2", tc.body, code)
		}
	}
	if _, err := loadApplianceConfig(t.TempDir()+"/missing.json", false); err != nil {
		t.Errorf("a missing default config must mean defaults: %v", err)
	}
	if _, err := loadApplianceConfig(t.TempDir()+"/missing.json", true); err == nil {
		t.Error("a missing --config file must be an error")
	}
}
