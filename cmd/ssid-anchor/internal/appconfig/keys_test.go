package appconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestErrorsNameFullKeyAndPosition: an unknown key is named by its full
// path with the key it most likely is, and every error that has a place in
// the file (syntax, type, unknown key) gives its line and column (issue 21,
// item 4). On main's code the first case said only `unknown field
// "gateway_bsae"` and syntax errors had a line without a column.
func TestErrorsNameFullKeyAndPosition(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"{\n  \"anchor\": {\n    \"gateway_bsae\": \"x\"\n  }\n}\n",
			`line 3, column 5: unknown key "anchor.gateway_bsae"; did you mean "anchor.gateway_base"?`},
		// The right key in the wrong section.
		{`{"gateway_base": "https://ipfs.io/ipfs/"}`, `line 1, column 2: unknown key "gateway_base"; did you mean "anchor.gateway_base"?`},
		{`{"remote_pinning": {"services": [{"name": "x", "endpoint": "https://x/", "tokn_env": "T"}]}}`,
			`unknown key "remote_pinning.services[0].tokn_env"; did you mean "remote_pinning.services[0].token_env"?`},
		// Inside a map (user names are free), the entry's keys are checked.
		{`{"rpc": {"authorizations": {"ci": {"auth_secret_env": "X", "allowed_path": ["/api/v0"]}}}}`,
			`unknown key "rpc.authorizations.ci.allowed_path"; did you mean "rpc.authorizations.ci.allowed_paths"?`},
		// Nothing alike: no guess, a pointer to the list of keys.
		{`{"http": {"zzqx": 1}}`, `unknown key "http.zzqx" (remove it or fix its spelling; ` + "`ssid-anchor config show`"},
		{"{\n \"http\": {\"listen\": \"x\",}\n}", `line 2, column 25: invalid character '}'`},
		{"{\n  \"schedule\": {\"quarterly\": 5}}", `line 2, column 16: key "schedule.quarterly": expected string, got number`},
		// A wrong type is placed at its key, inside a list too.
		{"{\"anchor\": {\"rules\": [\n  {\"match\": [\"*\"], \"globs\": [\"x\"], \"versioned\": \"yes\"}]}}", `line 2, column 36: key "anchor.rules.versioned": expected bool, got string`},
		{"{\"http\": {}}\n  {\"oops\": 1}", `line 2, column 3: text after the JSON object`},
	} {
		p := filepath.Join(t.TempDir(), "appliance.json")
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p, true)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v is not a config error", tc.body, err)
			continue
		}
		if !strings.Contains(err.Error(), p+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got  %v\n want the file and %s", tc.body, err, tc.want)
		}
	}
}

func TestKeyPaths(t *testing.T) {
	got := strings.Join(KeyPaths(reflectConfig()), " ")
	for _, want := range []string{"paths.events_log", "anchor.rules[].match", "anchor.gateway_base", "node.profile", "remote_pinning.services[].token_env", "rpc.authorizations", "http.allow_remote"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("KeyPaths lacks %s: %s", want, got)
		}
	}
}
