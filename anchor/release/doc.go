// Package release builds the quarterly release of a governance tree
// (SPEC 2.7): the reproducible bundle zip
// 05_documentation/releases/SSID_Quarterly_Release_YYYY-QN.zip, its release
// manifest, and the governance_release_published event, appended to the
// registry log and written to registry/events/release_YYYY-QN.json.
//
// Reproducible means the same inputs give the same bytes on any machine,
// umask and time zone: entries are flat, in SPEC order, with one fixed
// timestamp (SOURCE_DATE_EPOCH, else the quarter's last second UTC), mode
// 0644, deflate at a fixed level, no extra fields and no data descriptors.
// The zip's SHA-256 is the release's proof anchor, so it must not depend on
// checkout mtimes as the old Python script's did.
//
// Building is idempotent: a second build of the same quarter with the same
// inputs writes nothing and appends no event. The bundle carries the
// registry log as it stood before the quarter's first release event (the
// event names the bundle's hash, so it cannot be inside the bundle); later
// appends therefore do not change a rebuilt bundle.
//
// It links no IPFS code: anchoring the bundle is the anchor package's job.
// RecordIPFS writes the bundle's CID into the release manifest before that
// manifest is anchored, so the anchored manifest names its bundle's CID.
package release
