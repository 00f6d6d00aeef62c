// Package console serves the governance box's web console (SPEC 4.8): one
// server-rendered page that shows, at a glance, whether everything is
// anchored, pinned and verified and whether compliance is healthy.
//
// The page is html/template plus one small CSS file and an SVG icon, all
// embedded, so it works air-gapped with no JavaScript and no external
// asset. Everything it shows comes from a Snapshot that a Source builds
// from the real tree, manifest, telemetry state and node; the handler only
// renders it. The console is read-only except for POST /verify, which is
// refused for cross-origin requests, so another site open in the
// operator's browser cannot trigger it.
//
// The package imports no cmd code: cmd/ssid-anchor builds the Source and
// the daemon mounts New(...) at "/".
package console
