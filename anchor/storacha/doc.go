// Package storacha uploads anchored DAGs to Web3.Storage as it is today
// (Storacha) through its UCAN-HTTP bridge (storacha/specs w3-ucan-bridge.md,
// capabilities from w3-store.md).
//
// The flow for a batch of roots: cut the DAGs into CARv1 shards of at most
// Config.ShardSize bytes (streamed to temp files, CAR CID computed while
// writing); one `store/add` request listing every shard; an HTTP PUT of the
// exact CAR bytes for each shard the service asks for; one `upload/add`
// request with one task per root. Every answer is a list of receipts
// {p, s}; s is a varsig ed25519 signature over the DAG-CBOR encoding of p,
// checked against Config.ServiceDID when one is configured. Progress lives
// in a JSON-serialisable State the caller persists between calls, so a run
// interrupted after its PUTs resumes at `upload/add` and sends no byte twice.
//
// The two bridge tokens are held only in Config; they are never logged,
// stored in State, nor carried by an error (errors from net/http are wrapped
// and any echo of a token in a service message is redacted).
package storacha
