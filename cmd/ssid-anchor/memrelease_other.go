//go:build !linux

package main

// releaseText is Linux only (MADV_DONTNEED on the executable's mappings).
func releaseText() {}
