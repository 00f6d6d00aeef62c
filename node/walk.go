package node

import (
	"context"

	"github.com/ipfs/go-cid"
)

// WalkDAG visits every block under root in the repo once, depth first in
// link order (the order of `ipfs dag export`), checking each block against
// its CID before handing it over. Only CIDs are remembered, so a DAG of any
// size walks in constant memory per block. Remote uploaders (the Storacha
// bridge) cut their CARs from this walk.
func (n *Node) WalkDAG(ctx context.Context, root cid.Cid, visit func(c cid.Cid, data []byte) error) error {
	return walkDAG(ctx, repoBlocks{n}, root, visit)
}
