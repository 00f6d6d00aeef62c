package pinning

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
	"golang.org/x/sys/unix"
)

// Status is where a request stands; the values are the Pinning Service
// API's.
type Status string

// Request states: queued → pinning → pinned, or failed; moved when
// `pins move` handed the request to another service (MovedTo).
const (
	StatusQueued  Status = "queued"
	StatusPinning Status = "pinning"
	StatusPinned  Status = "pinned"
	StatusFailed  Status = "failed"
	StatusMoved   Status = "moved"
)

func (s Status) known() bool {
	switch s {
	case StatusQueued, StatusPinning, StatusPinned, StatusFailed, StatusMoved:
		return true
	}
	return false
}

// Meta is what a request tells the service about the anchor (Pin.meta).
type Meta struct {
	FilePath         string `json:"file_path"`
	SHA256           string `json:"sha256"`
	EventProofAnchor string `json:"event_proof_anchor,omitempty"`
}

// Map is the meta as the Pinning Service API's string map.
func (m Meta) Map() map[string]string {
	out := map[string]string{"app": "ssid-anchor", "file_path": m.FilePath, "sha256": m.SHA256}
	if m.EventProofAnchor != "" {
		out["event_proof_anchor"] = m.EventProofAnchor
	}
	return out
}

// Request is one anchor to be held by one service. (Service, CID) is its
// identity: queueing the same pair again changes nothing.
type Request struct {
	Service string `json:"service"`
	CID     string `json:"cid"`
	Name    string `json:"name"`
	Meta    Meta   `json:"meta"`
	Status  Status `json:"status"`
	// RequestID is the service's id for the pin (PinStatus.requestid).
	RequestID string `json:"request_id,omitempty"`
	// Attempts counts consecutive failed attempts; a step that reached the
	// service resets it.
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
	// Permanent marks a failure that retrying cannot fix (bad token,
	// refused content): drains leave it alone until `pins --retry`.
	Permanent bool `json:"permanent,omitempty"`
	// ServiceGone marks a request the service refused because it takes no
	// such requests any more (Storacha's HandlerNotFound and
	// ServiceUnavailable): no drain sends it again, `pins --retry`
	// included; `pins move` hands it to another service, and
	// `pins --retry --service NAME` asks that service once more.
	ServiceGone bool `json:"service_gone,omitempty"`
	// MovedTo names the service `pins move` queued this CID on; the
	// request's status is then moved.
	MovedTo string `json:"moved_to,omitempty"`
	// Evidence is backend-specific state kept with the request (a batch
	// backend's receipts, say). This package never interprets it.
	Evidence json.RawMessage `json:"evidence,omitempty"`
	Created  time.Time       `json:"created"`
	Updated  time.Time       `json:"updated"`
	// Recorded is the state last written to the manifest's remote_pins, so
	// a failed manifest write is caught up by the next drain.
	Recorded *RecordedState `json:"recorded,omitempty"`
}

// RecordedState is what the manifest says about a request.
type RecordedState struct {
	Status    Status `json:"status"`
	RequestID string `json:"request_id,omitempty"`
	MovedTo   string `json:"moved_to,omitempty"`
}

// Key is the request's identity in the queue.
func (r *Request) Key() string { return r.Service + "\x00" + r.CID }

// Done reports whether the request needs no more work: the service holds
// the content, or the request was moved to another service.
func (r *Request) Done() bool { return r.Status == StatusPinned || r.Status == StatusMoved }

// Due reports whether a drain should push the request at now.
func (r *Request) Due(now time.Time) bool {
	return !r.Done() && !r.Permanent && !r.ServiceGone && !now.Before(r.NextAttempt)
}

// queueFile is the queue's on-disk form.
type queueFile struct {
	Version  int        `json:"version"`
	Requests []*Request `json:"requests"`
}

// Queue is the durable list of remote pin requests: one JSON file in its
// directory (in the IPFS repo: <repo>/remote-pins/queue.json), replaced
// atomically under an exclusive lock. The file is small (a few hundred bytes
// a request), so rewriting it whole keeps every state transition one atomic
// step; a crash leaves the old list or the new one.
type Queue struct {
	dir string
	now func() time.Time
}

// QueueDir is where the queue lives inside an IPFS repo.
func QueueDir(repo string) string { return filepath.Join(repo, "remote-pins") }

// OpenQueue uses dir for the queue; nothing is created until the first write.
func OpenQueue(dir string, now func() time.Time) *Queue {
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	return &Queue{dir: dir, now: now}
}

// Path is the queue file.
func (q *Queue) Path() string { return filepath.Join(q.dir, "queue.json") }

// lock takes the queue lock, waiting for another process's short update to
// finish. It is a separate file because the queue file is replaced by rename.
func (q *Queue) lock() (func(), error) {
	if err := os.MkdirAll(q.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the remote pin queue directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(q.dir, "queue.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the remote pin queue lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the remote pin queue: %w", err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// maxQueueFile bounds what is read of queue.json. Requests are a few
// hundred bytes plus bounded evidence (maxEvidence), so a quarter of a GiB
// is far past any real queue; a bigger file is damage, not data.
const maxQueueFile = 256 << 20

func (q *Queue) read() ([]*Request, []byte, error) {
	f, err := os.Open(q.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading the remote pin queue: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxQueueFile+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the remote pin queue: %w", err)
	}
	if len(b) > maxQueueFile {
		return nil, nil, q.corrupt(fmt.Errorf("larger than %d MiB", maxQueueFile>>20))
	}
	reqs, err := parseQueue(b)
	if err != nil {
		return nil, nil, q.corrupt(err)
	}
	return reqs, b, nil
}

// corrupt says what is wrong with the queue file and what to do; the
// manifest's remote_pins still name every request, and anchors are not
// touched.
func (q *Queue) corrupt(err error) error {
	return fmt.Errorf("remote pin queue %s is damaged: %w (restore it from a backup or move it away, then run the command again; anchors are not affected and the manifest's remote_pins still list every request)", q.Path(), err)
}

// parseQueue decodes queue.json strictly: one object, no unknown keys, no
// trailing data, version 1, and every request whole (a null entry, a
// missing service or CID, an unknown status or the same service and CID
// twice is damage, refused like a truncated file).
func parseQueue(b []byte) ([]*Request, error) {
	var f queueFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON object at byte %d", dec.InputOffset())
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("version %d is not supported by this build (it reads version 1)", f.Version)
	}
	seen := make(map[string]int, len(f.Requests))
	for i, r := range f.Requests {
		at := fmt.Sprintf("requests[%d]", i)
		switch {
		case r == nil:
			return nil, fmt.Errorf("%s is null", at)
		case r.Service == "" || r.CID == "":
			return nil, fmt.Errorf("%s has no service or no cid", at)
		case !r.Status.known():
			return nil, fmt.Errorf("%s: unknown status %q", at, truncate(r.Status.String(), 40))
		case (r.Status == StatusMoved) != (r.MovedTo != ""):
			return nil, fmt.Errorf("%s: status %q with moved_to %q", at, r.Status, truncate(r.MovedTo, 64))
		}
		if j, dup := seen[r.Key()]; dup {
			return nil, fmt.Errorf("%s repeats requests[%d] (service %q, cid %s)", at, j, truncate(r.Service, 64), truncate(r.CID, 100))
		}
		seen[r.Key()] = i
	}
	return f.Requests, nil
}

func (s Status) String() string { return string(s) }

func (q *Queue) write(reqs []*Request, old []byte) error {
	sort.SliceStable(reqs, func(i, j int) bool { return reqs[i].Created.Before(reqs[j].Created) })
	b, err := json.MarshalIndent(queueFile{Version: 1, Requests: reqs}, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if bytes.Equal(b, old) {
		return nil
	}
	if err := tree.WriteFileAtomic(q.Path(), b, 0o600); err != nil {
		return fmt.Errorf("writing the remote pin queue: %w", err)
	}
	return nil
}

// List returns every request, oldest first.
func (q *Queue) List() ([]*Request, error) {
	unlock, err := q.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	reqs, _, err := q.read()
	return reqs, err
}

// Update runs fn on the requests under the lock and writes the result when
// it differs from what was read.
func (q *Queue) Update(fn func([]*Request) ([]*Request, error)) error {
	unlock, err := q.lock()
	if err != nil {
		return err
	}
	defer unlock()
	reqs, old, err := q.read()
	if err != nil {
		return err
	}
	reqs, err = fn(reqs)
	if err != nil {
		return err
	}
	return q.write(reqs, old)
}

// Enqueue adds requests that are not queued yet (by service and CID) as
// queued and due now, and returns how many were new. It is durable when it
// returns.
func (q *Queue) Enqueue(add []Request) (int, error) {
	n := 0
	err := q.Update(func(reqs []*Request) ([]*Request, error) {
		have := make(map[string]bool, len(reqs)+len(add))
		for _, r := range reqs {
			have[r.Key()] = true
		}
		now := q.now().UTC()
		for _, a := range add {
			if a.Service == "" || a.CID == "" {
				return nil, fmt.Errorf("queueing a remote pin: service and CID are required")
			}
			if have[a.Key()] {
				continue
			}
			have[a.Key()] = true
			r := a
			r.Status, r.Created, r.Updated, r.NextAttempt = StatusQueued, now, now, now
			reqs = append(reqs, &r)
			n++
		}
		return reqs, nil
	})
	return n, err
}
