// Package tree is the governance tree on disk: where its files are (Paths),
// the confinement of every read to the root (Root), the Root-24-LOCK
// measurement, the registry events log (read in every form the SSID writers
// produced, written in the classic one), and atomic, locked writes.
//
// It links nothing heavy on purpose: telemetry and the fuzzers use it
// without pulling in the embedded IPFS node.
package tree
