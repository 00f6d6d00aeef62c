// Package psatest is an IPFS Pinning Service API v1.0.0 server for tests:
// bearer auth, 202 on create, queued → pinning → pinned, GET /pins with
// every filter and pagination by limit/before, Failure{error:{reason,
// details}} bodies, and scripted faults (5xx, 429 with Retry-After, 401).
// It is written from the spec, not from our client, so it checks what the
// client sends. Pins are fetched through Fetch (a test gives it a second
// IPFS node that pulls the content over bitswap).
package psatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	ma "github.com/multiformats/go-multiaddr"
)

// Pin is the spec's Pin object.
type Pin struct {
	CID     string            `json:"cid"`
	Name    string            `json:"name,omitempty"`
	Origins []string          `json:"origins,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// PinStatus is the spec's PinStatus object.
type PinStatus struct {
	RequestID string            `json:"requestid"`
	Status    string            `json:"status"`
	Created   time.Time         `json:"created"`
	Pin       Pin               `json:"pin"`
	Delegates []string          `json:"delegates"`
	Info      map[string]string `json:"info"`
}

// Fault is a scripted answer to the next request matching Match
// ("POST /pins", "GET /pins", "GET /pins/"); Code 0 is a normal answer.
type Fault struct {
	Match      string
	Code       int
	RetryAfter string
	Reason     string
	Details    string
	// EchoAuth appends the request's Authorization header to Details, as a
	// careless service might; EchoAuthAs, when set, transforms it first
	// (lower-cased, base64...).
	EchoAuth   bool
	EchoAuthAs func(string) string
}

// Call is one request the server received.
type Call struct {
	Method, Path, Query string
	Authorized          bool
	Body                []byte
	Code                int
}

// Server is the pinning service.
type Server struct {
	URL   string
	Token string
	// Open serves requests without a token, as `filecoin-pin server
	// --allow-no-auth` does; a request that sends one must send Token.
	Open bool
	// Delegates are returned with every pin status.
	Delegates []string
	// Fetch pulls a pin's content (origins are the client's multiaddrs).
	// nil pins on the second status poll without fetching.
	Fetch func(ctx context.Context, c cid.Cid, origins []string) error
	// OnCreate runs after a pin was created and before the 202 is sent:
	// a test can kill the client there, the window in which a client
	// that does not look before it creates would make a duplicate.
	OnCreate func(PinStatus)

	srv    *httptest.Server
	mu     sync.Mutex
	pins   map[string]*pinState
	faults []Fault
	calls  []Call
	last   time.Time
	ctx    context.Context
	cancel context.CancelFunc
}

type pinState struct {
	st    PinStatus
	polls int
	done  chan struct{}
	err   error
}

// New starts a server on 127.0.0.1 with a random bearer token.
func New() *Server {
	s := newServer()
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s
}

// NewOn starts a server on a given loopback address (to bring a service
// back up where a client expects it).
func NewOn(addr string) (*Server, error) {
	s := newServer()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.srv = httptest.NewUnstartedServer(s)
	s.srv.Listener.Close()
	s.srv.Listener = l
	s.srv.Start()
	s.URL = s.srv.URL
	return s, nil
}

func newServer() *Server {
	b := make([]byte, 24)
	rand.Read(b)
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{Token: "psatest-" + hex.EncodeToString(b), pins: map[string]*pinState{}, ctx: ctx, cancel: cancel}
}

// Close stops the server and any fetch in flight.
func (s *Server) Close() {
	s.cancel()
	s.srv.Close()
}

// AddFaults queues scripted answers.
func (s *Server) AddFaults(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// Calls returns the requests received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Pins returns every pin the service holds, oldest first.
func (s *Server) Pins() []PinStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PinStatus
	for _, p := range s.pins {
		out = append(out, p.st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// Preload adds a pin as if another client had created it.
func (s *Server) Preload(p Pin, status string) PinStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.newPin(p)
	ps.st.Status = status
	close(ps.done)
	return ps.st
}

func (s *Server) newPin(p Pin) *pinState {
	b := make([]byte, 16)
	rand.Read(b)
	now := time.Now().UTC().Truncate(time.Microsecond)
	if !now.After(s.last) {
		// created must be unique: pagination depends on it.
		now = s.last.Add(time.Microsecond)
	}
	s.last = now
	ps := &pinState{st: PinStatus{RequestID: hex.EncodeToString(b), Status: "queued", Created: now, Pin: p,
		Delegates: append([]string{}, s.Delegates...), Info: map[string]string{}}, done: make(chan struct{})}
	s.pins[ps.st.RequestID] = ps
	return ps
}

type failure struct {
	Error struct {
		Reason  string `json:"reason"`
		Details string `json:"details,omitempty"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, reason, details string) {
	var f failure
	f.Error.Reason, f.Error.Details = reason, details
	writeJSON(w, code, f)
}

type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(c int) { r.code = c; r.ResponseWriter.WriteHeader(c) }

// ServeHTTP implements the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := make([]byte, 0)
	if r.Body != nil {
		var err error
		body, err = readAll(r)
		if err != nil {
			fail(w, 400, "BAD_REQUEST", err.Error())
			return
		}
	}
	rec := &recorder{ResponseWriter: w, code: 200}
	authorized := r.Header.Get("Authorization") == "Bearer "+s.Token || s.Open && r.Header.Get("Authorization") == ""
	defer func() {
		s.mu.Lock()
		s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Authorized: authorized, Body: body, Code: rec.code})
		s.mu.Unlock()
	}()
	w = rec
	route := r.Method + " " + r.URL.Path
	if f, ok := s.takeFault(r.Method, r.URL.Path); ok {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		d := f.Details
		if f.EchoAuth {
			auth := r.Header.Get("Authorization")
			if f.EchoAuthAs != nil {
				auth = f.EchoAuthAs(auth)
			}
			d += " (got " + auth + ")"
		}
		fail(w, f.Code, f.Reason, d)
		return
	}
	if !authorized {
		fail(w, 401, "UNAUTHORIZED", "missing or invalid access token")
		return
	}
	switch {
	case route == "GET /pins":
		s.list(w, r)
	case route == "POST /pins":
		s.create(w, body)
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/pins/"):
		s.get(w, strings.TrimPrefix(r.URL.Path, "/pins/"))
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/pins/"):
		s.mu.Lock()
		_, ok := s.pins[strings.TrimPrefix(r.URL.Path, "/pins/")]
		delete(s.pins, strings.TrimPrefix(r.URL.Path, "/pins/"))
		s.mu.Unlock()
		if !ok {
			fail(w, 404, "NOT_FOUND", "no such pin request")
			return
		}
		w.WriteHeader(202)
	default:
		fail(w, 404, "NOT_FOUND", route+" is not part of the Pinning Service API")
	}
}

func readAll(r *http.Request) ([]byte, error) {
	defer r.Body.Close()
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}

func (s *Server) takeFault(method, path string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		m, p, _ := strings.Cut(f.Match, " ")
		if m != method {
			continue
		}
		if p == path || strings.HasSuffix(p, "/") && strings.HasPrefix(path, p) {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
			if f.Code == 0 {
				return f, false
			}
			return f, true
		}
	}
	return Fault{}, false
}

func (s *Server) create(w http.ResponseWriter, body []byte) {
	var p Pin
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		fail(w, 400, "BAD_REQUEST", "body is not a Pin object: "+err.Error())
		return
	}
	c, err := cid.Decode(p.CID)
	if err != nil {
		fail(w, 400, "BAD_REQUEST", "cid: "+err.Error())
		return
	}
	if len(p.Name) > 255 {
		fail(w, 400, "BAD_REQUEST", "name: longer than 255 characters")
		return
	}
	if len(p.Origins) > 20 {
		fail(w, 400, "BAD_REQUEST", "origins: more than 20")
		return
	}
	for _, o := range p.Origins {
		if _, err := ma.NewMultiaddr(o); err != nil {
			fail(w, 400, "BAD_REQUEST", "origins: "+err.Error())
			return
		}
	}
	s.mu.Lock()
	ps := s.newPin(p)
	st := ps.st
	fetch, onCreate := s.Fetch, s.OnCreate
	s.mu.Unlock()
	if fetch == nil {
		close(ps.done)
	} else {
		go func() {
			ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
			defer cancel()
			err := fetch(ctx, c, p.Origins)
			s.mu.Lock()
			ps.err = err
			s.mu.Unlock()
			close(ps.done)
		}()
	}
	if onCreate != nil {
		onCreate(st)
	}
	writeJSON(w, 202, st)
}

// advance moves a pin along queued → pinning → pinned (or failed) as its
// fetch progresses.
func (s *Server) advance(ps *pinState) {
	if ps.st.Status == "pinned" || ps.st.Status == "failed" {
		return
	}
	ps.polls++
	select {
	case <-ps.done:
		if ps.err != nil {
			ps.st.Status = "failed"
			ps.st.Info["status_details"] = ps.err.Error()
		} else if s.Fetch != nil || ps.polls >= 2 {
			ps.st.Status = "pinned"
		} else {
			ps.st.Status = "pinning"
		}
	default:
		ps.st.Status = "pinning"
	}
}

func (s *Server) get(w http.ResponseWriter, id string) {
	s.mu.Lock()
	ps, ok := s.pins[id]
	var st PinStatus
	if ok {
		s.advance(ps)
		st = ps.st
	}
	s.mu.Unlock()
	if !ok {
		fail(w, 404, "NOT_FOUND", "no pin request "+id)
		return
	}
	writeJSON(w, 200, st)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fail(w, 400, "BAD_REQUEST", "limit: must be 1..1000")
			return
		}
		limit = n
	}
	var cids []string
	if v := q.Get("cid"); v != "" {
		cids = strings.Split(v, ",")
		if len(cids) > 10 {
			fail(w, 400, "BAD_REQUEST", "cid: at most 10")
			return
		}
	}
	statuses := []string{"pinned"}
	if v := q.Get("status"); v != "" {
		statuses = strings.Split(v, ",")
		for _, st := range statuses {
			if !slices.Contains([]string{"queued", "pinning", "pinned", "failed"}, st) {
				fail(w, 400, "BAD_REQUEST", "status: unknown "+st)
				return
			}
		}
	}
	var before, after time.Time
	for k, t := range map[string]*time.Time{"before": &before, "after": &after} {
		if v := q.Get(k); v != "" {
			p, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				fail(w, 400, "BAD_REQUEST", k+": not RFC 3339")
				return
			}
			*t = p
		}
	}
	name, match := q.Get("name"), q.Get("match")
	var meta map[string]string
	if v := q.Get("meta"); v != "" {
		if err := json.Unmarshal([]byte(v), &meta); err != nil {
			fail(w, 400, "BAD_REQUEST", "meta: not a JSON object of strings")
			return
		}
	}
	s.mu.Lock()
	var hits []PinStatus
	for _, ps := range s.pins {
		st := ps.st
		switch {
		case len(cids) > 0 && !slices.ContainsFunc(cids, func(q string) bool { return sameContent(q, st.Pin.CID) }),
			!slices.Contains(statuses, st.Status),
			!before.IsZero() && !st.Created.Before(before),
			!after.IsZero() && !st.Created.After(after),
			name != "" && !nameMatches(st.Pin.Name, name, match):
			continue
		}
		ok := true
		for k, v := range meta {
			if st.Pin.Meta[k] != v {
				ok = false
			}
		}
		if ok {
			hits = append(hits, st)
		}
	}
	s.mu.Unlock()
	sort.Slice(hits, func(i, j int) bool { return hits[i].Created.After(hits[j].Created) })
	count := len(hits)
	if len(hits) > limit {
		hits = hits[:limit]
	}
	if hits == nil {
		hits = []PinStatus{}
	}
	writeJSON(w, 200, map[string]any{"count": count, "results": hits})
}

func nameMatches(have, want, match string) bool {
	switch match {
	case "iexact":
		return strings.EqualFold(have, want)
	case "partial":
		return strings.Contains(have, want)
	case "ipartial":
		return strings.Contains(strings.ToLower(have), strings.ToLower(want))
	default:
		return have == want
	}
}

// sameContent matches a queried CID against a stored one the way services
// that normalise CIDs do (CIDv0 and CIDv1 of one DAG are the same pin).
func sameContent(a, b string) bool {
	ca, err1 := cid.Decode(a)
	cb, err2 := cid.Decode(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return ca.Type() == cb.Type() && string(ca.Hash()) == string(cb.Hash())
}
