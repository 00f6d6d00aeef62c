//go:build !linux

package node

import "syscall"

// syncFS falls back to a global sync where syncfs(2) does not exist.
func syncFS(string) error {
	syscall.Sync()
	return nil
}
