package anchor

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// RemotePinUpdate is the state of one remote pin request, for the records
// whose ipfs_cid is CID.
type RemotePinUpdate struct {
	CID       string
	Service   string
	RequestID string
	Status    string
	UpdatedAt time.Time
	// MovedTo names the service a moved request went to.
	MovedTo string
	// Provider is added to statistics.storage_providers once the service
	// holds the content (Status "pinned").
	Provider string
}

// RewriteOptions configure a manifest rewrite outside an anchoring run.
type RewriteOptions struct {
	Root      tree.Root
	Paths     tree.Paths
	OpenBatch func(context.Context) (Batch, error)
	// Provider names this node in statistics.storage_providers.
	Provider string
	// Signer signs the rewritten manifest (required, as for every writer).
	Signer Signer
	// OnCommit is told the new manifest's CID (the repo's chain head).
	OnCommit func(manifestCID string) error
	Now      func() time.Time
	Log      *slog.Logger
}

// RecordRemotePins writes remote pin states into the remote_pins of every
// record with the update's CID, and the services that hold a copy into
// statistics.storage_providers: one rewrite, through the same commit as an
// anchoring run (under the manifest lock, previous manifest added and
// chained, blocks and pin durable before the file is replaced). When the
// manifest already says everything, it writes nothing and Rewritten is
// false.
func RecordRemotePins(ctx context.Context, o RewriteOptions, ups []RemotePinUpdate) (*Result, error) {
	if o.OpenBatch == nil {
		return nil, errors.New("recording remote pins needs the node")
	}
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
	ro := RunOptions{Root: o.Root, Paths: o.Paths, OpenBatch: o.OpenBatch, Provider: o.Provider,
		Signer: o.Signer, OnCommit: o.OnCommit, Now: o.Now, Log: o.Log}
	res, err := Rewrite(ctx, ro, func(man *Manifest) error {
		changed := false
		var providers []string
		for _, u := range ups {
			for i := range man.Records {
				r := &man.Records[i]
				if r.IPFSCID != u.CID {
					continue
				}
				if applyRemotePin(r, u) {
					changed = true
				}
			}
			if u.Status == "pinned" && u.Provider != "" && !slices.Contains(providers, u.Provider) {
				providers = append(providers, u.Provider)
			}
		}
		if len(providers) > 0 && !listsProviders(man, providers) {
			changed = true
		}
		if !changed {
			return ErrUnchanged
		}
		// Touch keeps providers already listed, so adding them here carries
		// them through the commit's own Touch.
		return man.Touch(o.Now(), providers...)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return &Result{ManifestPath: o.Paths.Manifest}, nil // nothing anchored here, nothing to say
	}
	return res, err
}

func applyRemotePin(r *Record, u RemotePinUpdate) bool {
	ts := u.UpdatedAt.UTC().Format(time.RFC3339)
	for i := range r.RemotePins {
		p := &r.RemotePins[i]
		if p.Service != u.Service {
			continue
		}
		if p.RequestID == u.RequestID && p.Status == u.Status && p.MovedTo == u.MovedTo {
			return false
		}
		p.RequestID, p.Status, p.UpdatedAt, p.MovedTo = u.RequestID, u.Status, ts, u.MovedTo
		return true
	}
	r.RemotePins = append(r.RemotePins, RemotePin{Service: u.Service, RequestID: u.RequestID, Status: u.Status, UpdatedAt: ts, MovedTo: u.MovedTo})
	return true
}

func listsProviders(m *Manifest, want []string) bool {
	raw, ok := m.Get(keyStatistics)
	if !ok {
		return false
	}
	kvs, err := decodeObject(raw)
	if err != nil {
		return false
	}
	var listed []string
	for _, kv := range kvs {
		if kv.Key == "storage_providers" {
			if err := json.Unmarshal(kv.Value, &listed); err != nil {
				return false
			}
		}
	}
	for _, w := range want {
		if !slices.Contains(listed, w) {
			return false
		}
	}
	return true
}
