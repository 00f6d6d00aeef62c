package main

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// checkPeer admits only the daemon's own user (and root). The socket's
// mode already keeps others out; this also holds if someone loosens it.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if uid := os.Getuid(); int(cred.Uid) != uid && cred.Uid != 0 {
		return fmt.Errorf("peer uid %d is not the daemon's uid %d", cred.Uid, uid)
	}
	return nil
}
