package pinning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor/servicetext"
	"github.com/ssid/ssid-anchor/anchor/storacha"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/scheduler/retry"
)

// StorachaBridge is the backend for kind storacha-bridge: Storacha (what
// Web3.Storage is today) through its UCAN-HTTP bridge, by anchor/storacha.
//
// One drain is one batch: every due request of the service becomes a root
// of one upload (shared CAR shards, one store/add, one upload/add). The
// batch's progress (anchor/storacha.State: roots, shards, receipts; no
// secret, no presigned URL) is saved atomically next to the queue after
// every step, and an unfinished batch is resumed before a new one starts,
// so a crash after the PUTs resumes at upload/add without sending a shard
// twice.
type StorachaBridge struct {
	svc    Service
	o      BridgeOptions
	secret string
	authz  string
	// next is the retry time of the push in progress: the whole batch
	// comes back together (one jittered delay each would split it).
	next time.Time
}

// BridgeOptions are what a storacha-bridge backend needs from its host.
type BridgeOptions struct {
	// Blocks reads the anchored DAGs (the node).
	Blocks storacha.Blocks
	// Dir is the queue directory: the batch state and its shard CARs live
	// there (inside the IPFS repo, so a resume finds them).
	Dir string
	// Getenv reads the token variables (os.Getenv when nil).
	Getenv     func(string) string
	HTTPClient *http.Client
	Policy     retry.Policy
	Now        func() time.Time
	Log        *slog.Logger
}

// BridgeEvidence is what a pinned storacha request keeps in
// Request.Evidence: the receipts about its root and its shards.
type BridgeEvidence struct {
	Kind          string              `json:"kind"`
	ReceiptStatus string              `json:"receipt_status"`
	Shards        []string            `json:"shards"`
	Receipts      []storacha.Evidence `json:"receipts"`
	// Omitted counts receipts left out to keep the evidence within
	// maxEvidence (a root spread over very many shards).
	Omitted int `json:"omitted,omitempty"`
}

// maxEvidence bounds the evidence kept with one request: the queue is
// rewritten whole on every change, so what a service sends must not make
// it grow without bound.
const maxEvidence = 64 << 10

// NewBridge builds the backend for s (kind storacha-bridge). Missing token
// variables are not an error here: each push reports them by name, so
// `pins` shows it.
func NewBridge(s Service, o BridgeOptions) (*StorachaBridge, error) {
	s = s.WithDefaults()
	if s.Kind != KindStorachaBridge {
		return nil, fmt.Errorf("service %s: kind %q is not %q", s.Name, s.Kind, KindStorachaBridge)
	}
	if o.Blocks == nil || o.Dir == "" {
		return nil, fmt.Errorf("service %s: a storacha-bridge backend needs the node's blocks and the queue directory", s.Name)
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Policy == (retry.Policy{}) {
		o.Policy = retry.Default()
	}
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &StorachaBridge{svc: s, o: o, secret: o.Getenv(s.AuthSecretEnv), authz: o.Getenv(s.AuthorizationEnv)}, nil
}

// Name is the service's name.
func (b *StorachaBridge) Name() string { return b.svc.Name }

// StatePath is where the unfinished batch of service name is kept.
func StatePath(dir, name string) string { return filepath.Join(dir, "storacha-"+name+".json") }

func (b *StorachaBridge) shardDir() string {
	return filepath.Join(b.o.Dir, "storacha-"+b.svc.Name+".shards")
}

// MissingEnv names the token variables of s that are not set (never their
// values); an optional token (TokenOptional) is not missing.
func MissingEnv(s Service, getenv func(string) string) []string {
	s = s.WithDefaults()
	if getenv == nil {
		getenv = os.Getenv
	}
	var out []string
	switch s.Kind {
	case KindStorachaBridge:
		for _, v := range []string{s.AuthSecretEnv, s.AuthorizationEnv} {
			if v != "" && getenv(v) == "" {
				out = append(out, v)
			}
		}
	case KindPinningService:
		if s.TokenEnv != "" && !s.TokenOptional && getenv(s.TokenEnv) == "" {
			out = append(out, s.TokenEnv)
		}
	}
	return out
}

// LoadState reads the saved batch of service name in dir (nil when none).
func LoadState(dir, name string) (*storacha.State, error) {
	data, err := os.ReadFile(StatePath(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the storacha batch state: %w", err)
	}
	var st storacha.State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("storacha batch state %s: %w (move it away to start the batch over; anchors are not affected)", StatePath(dir, name), err)
	}
	return &st, nil
}

func (b *StorachaBridge) save(st *storacha.State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return tree.WriteFileAtomic(StatePath(b.o.Dir, b.svc.Name), append(data, '\n'), 0o600)
}

func (b *StorachaBridge) dropState() error {
	err := os.Remove(StatePath(b.o.Dir, b.svc.Name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Push resumes the saved batch, if any, and then uploads every other due
// request as one new batch.
func (b *StorachaBridge) Push(ctx context.Context, reqs []*Request) error {
	b.next = time.Time{}
	if miss := MissingEnv(b.svc, b.o.Getenv); len(miss) > 0 {
		err := fmt.Errorf("service %s: environment variable %s not set (the tokens from `storacha bridge generate-tokens`)", b.svc.Name, strings.Join(miss, " and "))
		for _, r := range reqs {
			b.fail(r, err, false)
		}
		return err
	}
	if err := os.MkdirAll(b.shardDir(), 0o700); err != nil {
		return fmt.Errorf("service %s: creating the shard directory: %w", b.svc.Name, err)
	}
	c, err := storacha.New(storacha.Config{
		Endpoint: b.svc.Endpoint, Space: b.svc.Space, AuthSecret: b.secret, Authorization: b.authz,
		ServiceDID: b.svc.ServiceDID, ServiceIssuer: b.svc.ServiceIssuer, ShardSize: b.svc.ShardSize, TempDir: b.shardDir(),
		HTTPClient: b.o.HTTPClient, Logger: b.o.Log,
	})
	if err != nil {
		// A configuration the client refuses: retrying cannot help.
		err = fmt.Errorf("service %s: %w", b.svc.Name, err)
		for _, r := range reqs {
			b.fail(r, err, true)
		}
		return err
	}
	byCID := map[string]*Request{}
	for _, r := range reqs {
		byCID[r.CID] = r
	}
	st, err := LoadState(b.o.Dir, b.svc.Name)
	if err != nil {
		return err
	}
	if st != nil && len(st.Roots) > 0 {
		inBatch := map[string]bool{}
		for _, rs := range st.Roots {
			inBatch[rs.Root] = true
		}
		b.o.Log.Info("storacha: resuming the unfinished batch", "service", b.svc.Name, "roots", len(st.Roots))
		uerr := c.Upload(ctx, b.o.Blocks, st, b.save)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b.apply(st, byCID, uerr)
		if _, gone := storacha.IsGone(uerr); gone {
			// The service will never take this batch: do not resume it.
			// Its other requests are refused the same way without asking.
			b.abandon(st)
			for _, r := range reqs {
				if !inBatch[r.CID] {
					b.refuse(r, uerr, nil)
				}
			}
			return nil
		}
		if uerr != nil {
			// The rest waits for this batch: one upload at a time.
			for _, r := range reqs {
				if !inBatch[r.CID] {
					b.fail(r, fmt.Errorf("waiting for an unfinished earlier batch: %s", uerr.Error()), false)
				}
			}
			return nil
		}
		if err := b.dropState(); err != nil {
			return fmt.Errorf("service %s: removing the finished batch state: %w", b.svc.Name, err)
		}
		for cidStr := range inBatch {
			delete(byCID, cidStr)
		}
	}
	var roots []cid.Cid
	for _, r := range reqs {
		if _, ok := byCID[r.CID]; !ok {
			continue
		}
		c, err := cid.Decode(r.CID)
		if err != nil {
			b.fail(r, fmt.Errorf("queued CID %q: %w", r.CID, err), true)
			delete(byCID, r.CID)
			continue
		}
		roots = append(roots, c)
	}
	if len(roots) == 0 {
		return nil
	}
	st = storacha.NewState(roots)
	if err := b.save(st); err != nil {
		return fmt.Errorf("service %s: saving the batch state: %w", b.svc.Name, err)
	}
	now := b.o.Now()
	for _, r := range byCID {
		if r.Status == StatusQueued {
			r.Status, r.Updated = StatusPinning, now
		}
	}
	uerr := c.Upload(ctx, b.o.Blocks, st, b.save)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.apply(st, byCID, uerr)
	if _, gone := storacha.IsGone(uerr); gone {
		b.abandon(st)
		return nil
	}
	if uerr == nil {
		if err := b.dropState(); err != nil {
			return fmt.Errorf("service %s: removing the finished batch state: %w", b.svc.Name, err)
		}
	}
	return nil
}

// abandon drops a batch the service refused for good: its state and its
// shard files (the anchors stay in the node; `pins move` sends them
// elsewhere).
func (b *StorachaBridge) abandon(st *storacha.State) {
	st.RemoveFiles()
	if err := b.dropState(); err != nil {
		b.o.Log.Warn("storacha: removing the refused batch state", "service", b.svc.Name, "err", err)
	}
}

// refuse marks r as refused by the service for good (ServiceGone): failed,
// never sent again by a drain, with the service's words, what to do, and
// the refusing receipts as evidence.
func (b *StorachaBridge) refuse(r *Request, err error, ev *BridgeEvidence) {
	ge, _ := storacha.IsGone(err)
	now := b.o.Now()
	r.Status, r.Permanent, r.ServiceGone = StatusFailed, true, true
	r.Attempts, r.Updated = 0, now
	r.LastError = b.redact(GoneMessage(b.svc, ge.Name, ge.Op+": "+ge.Msg, b.svc.ServiceDID != ""))
	if ev != nil {
		if data, err := json.Marshal(ev); err == nil {
			r.Evidence = data
		}
	}
}

// GoneMessage is what a request refused for good says: the service's own
// words and the way forward. name is the refusal (HandlerNotFound,
// ServiceUnavailable), words the service's message.
func GoneMessage(s Service, name, words string, verified bool) string {
	from := s.Name
	head := "the service takes no such uploads any more"
	if s.IsStorachaPublic() {
		head = Web3StorageStopped
	}
	note := ""
	if !verified {
		note = "; the receipt is unverified (no service_did configured)"
	}
	return fmt.Sprintf("%s (service: %s%s); move these requests: ssid-anchor pins move --from %s --to NAME", head, words, note, from)
}

// apply maps a batch's outcome onto its requests: a registered root is
// pinned with its receipts as evidence; the others carry the error (a
// refusal for good with its receipts as evidence).
func (b *StorachaBridge) apply(st *storacha.State, byCID map[string]*Request, uerr error) {
	now := b.o.Now()
	_, gone := storacha.IsGone(uerr)
	for _, rs := range st.Roots {
		r, ok := byCID[rs.Root]
		if !ok {
			continue
		}
		if gone && !rs.Uploaded {
			ev := evidenceFor(st, rs)
			b.refuse(r, uerr, &ev)
			continue
		}
		if rs.Uploaded {
			ev, err := json.Marshal(evidenceFor(st, rs))
			if err != nil {
				b.fail(r, fmt.Errorf("keeping the receipts: %w", err), false)
				continue
			}
			r.Status, r.Evidence, r.LastError = StatusPinned, ev, ""
			r.Attempts, r.Permanent, r.Updated = 0, false, now
			continue
		}
		if uerr == nil {
			uerr = errors.New("the upload ended without registering this root")
		}
		transient, _ := storacha.IsTransient(uerr)
		b.fail(r, uerr, !transient)
	}
}

func evidenceFor(st *storacha.State, rs storacha.RootState) BridgeEvidence {
	ev := BridgeEvidence{Kind: KindStorachaBridge, ReceiptStatus: st.ReceiptStatus(), Shards: rs.Shards}
	shard := map[string]bool{}
	for _, s := range rs.Shards {
		shard[s] = true
	}
	// The receipts about the root (upload/add) first, newest first: they
	// are the proof; then those about its shards, until maxEvidence.
	var mine []storacha.Evidence
	for i := len(st.Receipts) - 1; i >= 0; i-- {
		if st.Receipts[i].About == rs.Root {
			mine = append(mine, st.Receipts[i])
		}
	}
	for i := len(st.Receipts) - 1; i >= 0; i-- {
		if shard[st.Receipts[i].About] {
			mine = append(mine, st.Receipts[i])
		}
	}
	size := 0
	for _, e := range mine {
		n := len(e.Receipt) + 300
		if size+n > maxEvidence {
			ev.Omitted++
			continue
		}
		size += n
		ev.Receipts = append(ev.Receipts, e)
	}
	if len(ev.Receipts) > 0 {
		sub := storacha.State{Receipts: ev.Receipts}
		ev.ReceiptStatus = sub.ReceiptStatus()
	}
	return ev
}

// fail records err on r: a bad receipt or a refusal (401/403, an error
// in a receipt) stops the request until `pins --retry`; a transient one is
// retried on the shared policy, after the service's Retry-After.
func (b *StorachaBridge) fail(r *Request, err error, permanent bool) {
	now := b.o.Now()
	r.LastError = b.redact(err.Error())
	r.Updated = now
	if errors.Is(err, storacha.ErrBadReceipt) {
		// Not the service's word: nothing it claims is taken, the request
		// stays queued, stopped until the operator looks (`pins --retry`).
		r.Status, r.Permanent = StatusQueued, true
		r.LastError = b.redact(err.Error() + "; not taken as the service's word (check service_did and service_issuer, or who answers at the endpoint)")
		return
	}
	if permanent {
		r.Status, r.Permanent = StatusFailed, true
		return
	}
	_, after := storacha.IsTransient(err)
	r.Attempts++
	if b.next.IsZero() {
		b.next = now.Add(b.o.Policy.Next(r.Attempts, after))
	}
	r.NextAttempt = b.next
}

// redact makes text for a request's last error safe to keep and print:
// the bridge tokens out in any case or encoding, no control characters,
// bounded.
func (b *StorachaBridge) redact(s string) string {
	return servicetext.Safe(s, 900, b.secret, b.authz)
}
