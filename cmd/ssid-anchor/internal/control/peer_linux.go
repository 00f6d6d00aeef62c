package control

import (
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
	return peerAllowed(int(cred.Uid), os.Getuid())
}
