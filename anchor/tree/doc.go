// Package tree is the governance tree on disk: where its files are (Paths),
// the confinement of every read and write to the root (Root, an os.Root:
// the kernel resolves each path beneath the root, so nothing is checked
// first and opened later), the refusal of anything but regular files, the
// Root-24-LOCK measurement, the registry events log (read in every form the
// SSID writers produced, appended in the classic one, all or nothing), and
// atomic, locked writes.
//
// It links nothing heavy on purpose: telemetry and the fuzzers use it
// without pulling in the embedded IPFS node.
package tree
