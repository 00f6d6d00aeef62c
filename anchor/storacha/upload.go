package storacha

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ssid/ssid-anchor/anchor/servicetext"
)

// State is the progress of one batch upload. It holds no secret and no
// presigned URL; the caller stores it (JSON) between calls and hands it
// back, so a run cut short resumes where it stopped.
type State struct {
	Roots    []RootState  `json:"roots"`
	Shards   []ShardState `json:"shards,omitempty"`
	Receipts []Evidence   `json:"receipts,omitempty"`
}

// RootState is one DAG root to register as an upload.
type RootState struct {
	Root     string   `json:"root"`
	Shards   []string `json:"shards,omitempty"` // CAR CIDs holding its blocks
	Uploaded bool     `json:"uploaded"`         // upload/add answered ok
}

// ShardState is one CAR of the batch.
type ShardState struct {
	Link string `json:"link"` // CAR CID (codec car, sha2-256 of the bytes)
	Size int64  `json:"size"`
	File string `json:"file,omitempty"` // local copy while it may still be needed
	// Stored: the service holds the bytes (PUT answered 2xx, or store/add
	// said done).
	Stored bool `json:"stored"`
}

// NewState starts an upload of roots (each becomes an upload of its own).
func NewState(roots []cid.Cid) *State {
	st := &State{}
	for _, r := range roots {
		st.Roots = append(st.Roots, RootState{Root: r.String()})
	}
	return st
}

// Done says every root is registered.
func (s *State) Done() bool {
	for _, r := range s.Roots {
		if !r.Uploaded {
			return false
		}
	}
	return len(s.Roots) > 0
}

// ReceiptStatus says how far the kept receipts can be trusted.
func (s *State) ReceiptStatus() string {
	if len(s.Receipts) == 0 {
		return "no receipts"
	}
	for _, r := range s.Receipts {
		if !r.Verified {
			return "receipts unverified (no service_did configured)"
		}
	}
	return "receipts verified"
}

// RemoveFiles deletes the local shard CARs (after Done, or when the caller
// gives the batch up).
func (s *State) RemoveFiles() {
	for i := range s.Shards {
		if s.Shards[i].File != "" {
			os.Remove(s.Shards[i].File)
			s.Shards[i].File = ""
		}
	}
}

func (s *State) roots() ([]cid.Cid, error) {
	out := make([]cid.Cid, len(s.Roots))
	for i, r := range s.Roots {
		c, err := cid.Decode(r.Root)
		if err != nil {
			return nil, fmt.Errorf("state: root %d: %w", i+1, err)
		}
		out[i] = c
	}
	return out, nil
}

// Upload runs (or resumes) the batch in st: shards built once, one
// store/add for every shard the service does not hold yet, a PUT for each
// it asks for, one upload/add for every root not yet registered. save is
// called with st after every step that changed it; an error from save stops
// the run. On error st tells what is done; call again with it to go on
// (IsTransient says whether that is worth it now).
func (c *Client) Upload(ctx context.Context, src Blocks, st *State, save func(*State) error) error {
	if len(st.Roots) == 0 {
		return errors.New("storacha upload: no roots")
	}
	if st.Done() {
		st.RemoveFiles()
		return nil
	}
	roots, err := st.roots()
	if err != nil {
		return err
	}
	if len(st.Shards) == 0 {
		if err := c.build(ctx, src, roots, st); err != nil {
			return err
		}
		if err := save(st); err != nil {
			return fmt.Errorf("saving upload state: %w", err)
		}
	}
	if err := c.store(ctx, src, roots, st, save); err != nil {
		return err
	}
	if err := c.register(ctx, st, save); err != nil {
		return err
	}
	st.RemoveFiles()
	return save(st)
}

// build writes the shards and records which shards each root needs.
func (c *Client) build(ctx context.Context, src Blocks, roots []cid.Cid, st *State) error {
	shards, per, err := buildShards(ctx, src, roots, c.cfg.shardSize(), c.cfg.TempDir)
	if err != nil {
		return err
	}
	st.Shards = make([]ShardState, len(shards))
	for i, s := range shards {
		st.Shards[i] = ShardState{Link: s.link.String(), Size: s.size, File: s.path}
	}
	for ri := range st.Roots {
		st.Roots[ri].Shards = nil
		for _, i := range per[ri] {
			st.Roots[ri].Shards = append(st.Roots[ri].Shards, shards[i].link.String())
		}
	}
	var total int64
	for _, s := range shards {
		total += s.size
	}
	c.log.Info("storacha shards built", "roots", len(roots), "shards", len(shards), "bytes", total)
	return nil
}

// rebuild writes the shards again when their files are gone (a crash, a
// cleaned temp dir); the same roots give the same CARs, which is checked.
func (c *Client) rebuild(ctx context.Context, src Blocks, roots []cid.Cid, st *State) error {
	shards, _, err := buildShards(ctx, src, roots, c.cfg.shardSize(), c.cfg.TempDir)
	if err != nil {
		return err
	}
	if len(shards) != len(st.Shards) {
		for _, s := range shards {
			os.Remove(s.path)
		}
		return fmt.Errorf("rebuilding shards: %d CARs now, %d recorded; the blocks changed, start a new upload", len(shards), len(st.Shards))
	}
	for i, s := range shards {
		if s.link.String() != st.Shards[i].Link {
			for _, s := range shards {
				os.Remove(s.path)
			}
			return fmt.Errorf("rebuilding shards: CAR %d is %s, %s was recorded; the blocks changed, start a new upload", i+1, s.link, st.Shards[i].Link)
		}
	}
	for i, s := range shards {
		if st.Shards[i].File != "" && st.Shards[i].File != s.path {
			os.Remove(st.Shards[i].File)
		}
		st.Shards[i].File = s.path
	}
	return nil
}

// store asks the service to take every shard it does not hold yet and PUTs
// those it asks for.
func (c *Client) store(ctx context.Context, src Blocks, roots []cid.Cid, st *State, save func(*State) error) error {
	var pending []int
	for i, s := range st.Shards {
		if !s.Stored {
			pending = append(pending, i)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	for _, i := range pending {
		if !fileHolds(st.Shards[i].File, st.Shards[i].Size) {
			if err := c.rebuild(ctx, src, roots, st); err != nil {
				return err
			}
			break
		}
	}
	tasks := make([]task, len(pending))
	for k, i := range pending {
		s := st.Shards[i]
		link, err := cid.Decode(s.Link)
		if err != nil {
			return fmt.Errorf("state: shard %d: %w", i+1, err)
		}
		size := s.Size
		tasks[k] = task{ability: "store/add", about: s.Link, args: qp.Map(2, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "link", qp.Link(cidlink.Link{Cid: link}))
			qp.MapEntry(ma, "size", qp.Int(size))
		})}
	}
	rs, err := c.invoke(ctx, "store/add", tasks)
	if err != nil {
		return err
	}
	type putJob struct {
		shard   int
		url     string
		headers map[string]string
	}
	var puts []putJob
	var failed []string
	var gone *receipt
	for k, r := range rs {
		i := pending[k]
		st.Receipts = append(st.Receipts, c.evidence("store/add", st.Shards[i].Link, r))
		if r.ok == nil {
			if isGone(r.errName) && gone == nil {
				gone = r
			}
			failed = append(failed, fmt.Sprintf("%s: %s", st.Shards[i].Link, c.redact(r.errMsg)))
			continue
		}
		if l := okString(r.ok, "link"); l != "" && l != st.Shards[i].Link {
			failed = append(failed, fmt.Sprintf("%s: the receipt is about %s", st.Shards[i].Link, l))
			continue
		}
		switch status := okString(r.ok, "status"); status {
		case "done":
			st.Shards[i].Stored = true
		case "upload":
			url := okString(r.ok, "url")
			h, err := okHeaders(r.ok)
			if url == "" || err != nil {
				failed = append(failed, fmt.Sprintf("%s: status upload without a usable url and headers", st.Shards[i].Link))
				continue
			}
			puts = append(puts, putJob{shard: i, url: url, headers: h})
		default:
			failed = append(failed, fmt.Sprintf("%s: unknown status %q", st.Shards[i].Link, status))
		}
	}
	if err := save(st); err != nil {
		return fmt.Errorf("saving upload state: %w", err)
	}
	if gone != nil {
		return &Error{Op: "store/add", Name: gone.errName, Msg: c.redact(gone.errMsg)}
	}
	if len(failed) > 0 {
		return &Error{Op: "store/add", Msg: fmt.Sprintf("the service refused %d of %d shards: %s", len(failed), len(rs), joinMax(failed, 3))}
	}
	for _, p := range puts {
		s := &st.Shards[p.shard]
		op := "PUT shard " + s.Link
		if err := c.put(ctx, op, p.url, p.headers, s.File, s.Size); err != nil {
			return err
		}
		s.Stored = true
		c.log.Info("storacha shard stored", "car", s.Link, "bytes", s.Size)
		if err := save(st); err != nil {
			return fmt.Errorf("saving upload state: %w", err)
		}
	}
	return nil
}

// register sends one upload/add task per root not yet registered.
func (c *Client) register(ctx context.Context, st *State, save func(*State) error) error {
	var pending []int
	var tasks []task
	for i, r := range st.Roots {
		if r.Uploaded {
			continue
		}
		root, err := cid.Decode(r.Root)
		if err != nil {
			return fmt.Errorf("state: root %d: %w", i+1, err)
		}
		if len(r.Shards) == 0 {
			return fmt.Errorf("state: root %s lists no shards", r.Root)
		}
		shards := make([]cid.Cid, len(r.Shards))
		for k, s := range r.Shards {
			if shards[k], err = cid.Decode(s); err != nil {
				return fmt.Errorf("state: root %s: shard %q: %w", r.Root, s, err)
			}
		}
		pending = append(pending, i)
		tasks = append(tasks, task{ability: "upload/add", about: r.Root, args: qp.Map(2, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "root", qp.Link(cidlink.Link{Cid: root}))
			qp.MapEntry(ma, "shards", qp.List(int64(len(shards)), func(la datamodel.ListAssembler) {
				for _, s := range shards {
					qp.ListEntry(la, qp.Link(cidlink.Link{Cid: s}))
				}
			}))
		})})
	}
	if len(tasks) == 0 {
		return nil
	}
	rs, err := c.invoke(ctx, "upload/add", tasks)
	if err != nil {
		return err
	}
	var failed []string
	var gone *receipt
	for k, r := range rs {
		i := pending[k]
		st.Receipts = append(st.Receipts, c.evidence("upload/add", st.Roots[i].Root, r))
		if r.ok == nil {
			if isGone(r.errName) && gone == nil {
				gone = r
			}
			failed = append(failed, fmt.Sprintf("%s: %s", st.Roots[i].Root, c.redact(r.errMsg)))
			// The service may have lost a shard (ShardsNotFound): ask
			// store/add about this root's shards again next time; for
			// those it still holds it answers done, so nothing is sent
			// twice.
			for _, l := range st.Roots[i].Shards {
				for k := range st.Shards {
					if st.Shards[k].Link == l {
						st.Shards[k].Stored = false
					}
				}
			}
			continue
		}
		if got := okString(r.ok, "root"); got != "" && got != st.Roots[i].Root {
			failed = append(failed, fmt.Sprintf("%s: the receipt is about %s", st.Roots[i].Root, got))
			continue
		}
		st.Roots[i].Uploaded = true
	}
	if err := save(st); err != nil {
		return fmt.Errorf("saving upload state: %w", err)
	}
	if gone != nil {
		return &Error{Op: "upload/add", Name: gone.errName, Msg: c.redact(gone.errMsg)}
	}
	if len(failed) > 0 {
		return &Error{Op: "upload/add", Msg: fmt.Sprintf("the service refused %d of %d roots: %s", len(failed), len(rs), joinMax(failed, 3))}
	}
	c.log.Info("storacha uploads registered", "roots", len(rs))
	return nil
}

// evidence keeps r: without the credentials a store/add answer carries (the
// presigned upload URL's query and the headers to send with it), and only
// when it is small enough to keep.
func (c *Client) evidence(ability, about string, r *receipt) Evidence {
	sum := sha256.Sum256(r.raw)
	e := Evidence{Ability: ability, About: about, Issuer: servicetext.Clean(r.iss, 200), Verified: c.key != nil,
		Error: servicetext.Clean(r.errName, 64), Size: len(r.raw), SHA256: hex.EncodeToString(sum[:])}
	raw := r.raw
	if ability == "store/add" && r.ok != nil {
		kept, redacted, err := withoutCredentials(r.node)
		if err != nil {
			c.log.Warn("storacha: a store/add receipt could not be cleaned; it is not kept", "err", err)
			return e
		}
		if len(redacted) > 0 {
			raw, e.Redacted = kept, redacted
		}
	}
	if len(raw) <= MaxEvidenceReceipt {
		e.Receipt = raw
	}
	return e
}

func joinMax(items []string, n int) string {
	s := ""
	for i, it := range items {
		if i == n {
			return s + fmt.Sprintf("; and %d more", len(items)-n)
		}
		if i > 0 {
			s += "; "
		}
		s += it
	}
	return s
}
