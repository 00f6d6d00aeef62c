package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/scheduler/retry"
)

// NewDrainer builds the queue's drainer on node n: a backend for every
// configured service this build can speak (and the filecoin-pin preset,
// which needs no entry), the manifest as recorder. A service's delegates
// are dialed only as the node's profile allows.
func NewDrainer(e Env, n *node.Node) (*pinning.Drainer, error) {
	services := pinning.WithPresets(e.Config.RemotePinning.Services)
	backends := map[string]pinning.Backend{}
	for _, s := range services {
		switch s.Kind {
		case pinning.KindPinningService:
			policy := pinning.AirGappedDelegates()
			if n.Profile() == node.ProfilePublic {
				policy = pinning.PublicDelegates(s.Endpoint)
			}
			b, err := pinning.NewPSA(s, pinning.PSAOptions{
				Origins: n.Addrs, Connect: connectDelegates(n), Delegates: &policy, Policy: retry.Default(),
				Now: e.now, Log: e.log(), Getenv: e.getenv,
			})
			if err != nil {
				return nil, err
			}
			backends[s.Name] = b
		case pinning.KindStorachaBridge:
			b, err := pinning.NewBridge(s, pinning.BridgeOptions{
				Blocks: n, Dir: pinning.QueueDir(e.Repo), Getenv: e.getenv,
				Policy: retry.Default(), Now: e.now, Log: e.log(),
			})
			if err != nil {
				return nil, err
			}
			backends[s.Name] = b
		}
	}
	return &pinning.Drainer{
		Queue:    pinning.OpenQueue(pinning.QueueDir(e.Repo), e.now),
		Services: services,
		Backends: backends,
		Recorder: manifestRecorder{e: e, n: n},
		Policy:   retry.Default(),
		Now:      e.now,
		Log:      e.log(),
		Getenv:   e.getenv,
	}, nil
}

// DrainRemotePins advances the remote pin queue once on the open node n:
// the daemon's scheduler calls it (its node is online, so delegates can
// fetch). Another drain running elsewhere is not an error. The report
// says when the next unfinished request is due.
func DrainRemotePins(ctx context.Context, e Env, n *node.Node) (pinning.Report, error) {
	d, err := NewDrainer(e, n)
	if err != nil {
		return pinning.Report{}, err
	}
	rep, err := d.Drain(ctx, pinning.DrainOptions{})
	if errors.Is(err, pinning.ErrBusy) {
		return pinning.Report{}, nil
	}
	if rep.Pushed > 0 || rep.Changed > 0 {
		e.log().Info("remote pins drained", "pushed", rep.Pushed, "changed", rep.Changed, "recorded", rep.Recorded)
	}
	return rep, err
}

// connectDelegates dials a service's delegates so it can fetch from us.
func connectDelegates(n *node.Node) func(ctx context.Context, addrs []string) error {
	return func(ctx context.Context, addrs []string) error {
		var mas []ma.Multiaddr
		for _, a := range addrs {
			m, err := ma.NewMultiaddr(a)
			if err != nil {
				return fmt.Errorf("delegate %q: %w", a, err)
			}
			mas = append(mas, m)
		}
		infos, err := peer.AddrInfosFromP2pAddrs(mas...)
		if err != nil {
			return fmt.Errorf("delegates: %w", err)
		}
		var errs []error
		for _, ai := range infos {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			if err := n.API().Swarm().Connect(cctx, ai); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ai.ID, err))
			}
			cancel()
		}
		return errors.Join(errs...)
	}
}

// manifestRecorder writes a drain's changes into the anchor manifest.
type manifestRecorder struct {
	e Env
	n *node.Node
}

func (m manifestRecorder) RecordRemotePins(ctx context.Context, changes []pinning.Change) error {
	root, err := tree.OpenRoot(m.e.Root)
	if err != nil {
		return fmt.Errorf("--root: %w", err)
	}
	defer root.Close()
	ups := make([]anchor.RemotePinUpdate, len(changes))
	for i, c := range changes {
		ups[i] = anchor.RemotePinUpdate{CID: c.CID, Service: c.Service, RequestID: c.RequestID, Status: string(c.Status), UpdatedAt: c.UpdatedAt, MovedTo: c.MovedTo, Provider: c.Provider}
	}
	res, err := anchor.RecordRemotePins(ctx, anchor.RewriteOptions{
		Root: root, Paths: m.e.Config.Paths, Provider: "embedded-ipfs:" + m.n.PeerID(), Now: m.e.now, Log: m.e.log(),
		OpenBatch: func(ctx context.Context) (anchor.Batch, error) { return m.n.NewBatch(ctx) },
		Signer:    m.n, OnCommit: m.n.SetChainHead,
	}, ups)
	if err != nil {
		return err
	}
	if res.Rewritten {
		m.e.log().Info("manifest records remote pin status", "changes", len(changes), "manifest_cid", res.ManifestCID)
	}
	return nil
}

// QueuedRemotePins is what `anchor` reports about the requests it queued.
type QueuedRemotePins struct {
	Services []string `json:"services"`
	Queued   int      `json:"queued"`
	Queue    string   `json:"queue"`
}

// QueueRemotePins queues one request per new record and service. It only
// writes the queue file: no service is contacted, so local anchoring never
// waits on one.
func QueueRemotePins(e Env, services []pinning.Service, recs []anchor.Record) (*QueuedRemotePins, error) {
	if len(services) == 0 || len(recs) == 0 {
		return nil, nil
	}
	q := pinning.OpenQueue(pinning.QueueDir(e.Repo), e.now)
	var reqs []pinning.Request
	info := &QueuedRemotePins{Queue: q.Path()}
	for _, s := range services {
		info.Services = append(info.Services, s.Name)
		for _, r := range recs {
			reqs = append(reqs, pinning.Request{
				Service: s.Name, CID: r.IPFSCID, Name: "ssid-anchor " + r.FilePath,
				Meta: pinning.Meta{FilePath: r.FilePath, SHA256: r.FileHash, EventProofAnchor: r.EventProofAnchor},
			})
		}
	}
	n, err := q.Enqueue(reqs)
	if err != nil {
		return nil, err
	}
	info.Queued = n
	return info, nil
}
