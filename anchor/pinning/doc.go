// Package pinning asks remote services to keep copies of anchored content
// (SPEC 4.3): the services of the appliance config's remote_pinning section,
// a durable queue of pin requests kept in the IPFS repo (never in the
// manifest), the drain that advances them, and the backend that speaks the
// IPFS Pinning Service API (spec v1.0.0: Pinata, Filebase, 4EVERLAND, IPFS
// Cluster's pinsvc).
//
// Backends plug in through the Backend interface. A backend sees every due
// request of its service at once, so a batch protocol (Storacha's UCAN-HTTP
// bridge, kind storacha-bridge) can put many anchors into one upload; until
// such a backend is linked in, its requests stay queued and say why.
//
// A service that says it takes no such requests any more (Storacha's public
// service since 2026: HandlerNotFound, ServiceUnavailable) fails them for
// good (Request.ServiceGone); Queue.Move hands a service's requests to
// another one (`pins move`), such as the filecoin-pin preset, Filecoin Pin's
// local Pinning Service API server, which Storacha names as its users'
// migration target.
//
// Nothing here blocks local anchoring: cmd queues after the run has
// committed, and a service that is down only delays its own requests.
// Tokens are read from the environment when a backend is built and are never
// written to the queue, the manifest, a log line or an error. Nothing a
// service sends is trusted: its words are cleaned (anchor/servicetext), its
// answers and evidence bounded, its delegates dialed only as the node's
// profile allows (DelegatePolicy), its redirects to another origin refused.
package pinning
