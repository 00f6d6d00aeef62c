// Package node embeds a kubo IPFS node: it creates and opens the repo under
// --repo, adds files with exactly the CID parameters of stock `ipfs add`,
// pins what it adds, and makes blocks and pins durable before the caller
// records them anywhere.
//
// One-shot commands open the node offline; only the daemon goes online. The
// air-gapped profile never dials anything but loopback addresses.
//
// Plugin loading writes to process-wide registries in kubo, so it happens once
// per process behind a sync.Once; that is the only package-level state.
package node
