package control

import "fmt"

// peerAllowed is checkPeer's rule: the daemon admits its own user and
// root, nobody else.
func peerAllowed(peerUID, daemonUID int) error {
	if peerUID != daemonUID && peerUID != 0 {
		return fmt.Errorf("peer uid %d is not the daemon's uid %d", peerUID, daemonUID)
	}
	return nil
}
