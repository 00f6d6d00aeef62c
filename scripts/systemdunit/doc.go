// Package systemdunit holds the tests of the systemd unit
// (scripts/ssid-anchor.service), its air-gapped drop-in
// (scripts/ssid-anchor-airgapped.conf) and the README's systemd section.
//
// They live in a package of their own, not beside the CLI's tests in
// cmd/ssid-anchor: they test files under scripts/ and the README's install
// steps against the built binary (SSID_ANCHOR_BIN, as make test sets it),
// need none of the CLI's internals or test helpers, and so compile and run
// on their own while that package is reorganised.
package systemdunit
