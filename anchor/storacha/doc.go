// Package storacha uploads anchored DAGs to Web3.Storage as it was until
// 2026 (Storacha) through its UCAN-HTTP bridge (storacha/specs
// w3-ucan-bridge.md, capabilities from w3-store.md).
//
// The service has changed: Storacha removed its store/add handler on
// 2026-01-29 (upload-service #643), stopped taking uploads on 2026-04-15,
// and has run with writes disabled since 2026-05-15 (#708), so its bridge
// answers store/add with HandlerNotFound and every other write with
// ServiceUnavailable. Such signed refusals come back as an *Error whose
// Gone reports true; the caller stops sending the requests. The client
// stays for Storacha-compatible deployments that still take store/add.
//
// The flow for a batch of roots: cut the DAGs into CARv1 shards of at most
// Config.ShardSize bytes (streamed to temp files, CAR CID computed while
// writing); one `store/add` request listing every shard; an HTTP PUT of the
// exact CAR bytes for each shard the service asks for; one `upload/add`
// request with one task per root. Every answer is a list of receipts
// {p, s}; s is a varsig ed25519 signature over the DAG-CBOR encoding of p,
// checked against Config.ServiceDID when one is configured (Storacha issues
// receipts as did:web:up.storacha.network, Config.ServiceIssuer, and signs
// them with that name's did:key). Progress lives
// in a JSON-serialisable State the caller persists between calls, so a run
// interrupted after its PUTs resumes at `upload/add` and sends no byte twice.
//
// The two bridge tokens are held only in Config; they are never logged,
// stored in State, nor carried by an error (errors from net/http are wrapped
// and any echo of a token in a service message is redacted). Neither are
// the presigned upload URLs and headers the service hands out: kept
// receipts have them cut out. What the service says is bounded (answer
// size and time, receipt size kept, message length) and where it says to
// upload is checked before and when dialed.
package storacha
