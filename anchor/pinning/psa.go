package pinning

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/pinning/remote/client/openapi"
	"github.com/ipfs/go-cid"
	"github.com/ssid/ssid-anchor/anchor/servicetext"
	"github.com/ssid/ssid-anchor/scheduler/retry"
)

// PSA is the backend for kind pinning-service: the IPFS Pinning Service API
// v1.0.0.
//
// It speaks HTTP itself, with boxo's generated models
// (boxo/pinning/remote/client/openapi) for the wire format, rather than
// through boxo's client: that client turns a Failure body into an error
// without the HTTP status code and drops the Retry-After header, so 429 and
// 503 (retry later) could not be told from 401 or 409 (do not retry), and it
// takes no http.Client, so neither timeouts nor a test transport could be
// set.
type PSA struct {
	svc      Service
	token    string
	endpoint string
	o        PSAOptions
	// pausedUntil is set when the service answers 429: no worker sends
	// anything before it (unix nanoseconds).
	pausedUntil atomic.Int64
}

// PSAOptions are what a PSA backend needs from its host.
type PSAOptions struct {
	// Getenv reads the token variable (os.Getenv when nil).
	Getenv func(string) string
	// HTTPClient defaults to one with a 30 s timeout.
	HTTPClient *http.Client
	// Origins returns our node's full multiaddrs for Pin.origins.
	Origins func() []string
	// Connect dials the service's delegates so it can fetch from us; the
	// node's swarm connect. It only ever sees delegates Delegates allows.
	Connect func(ctx context.Context, addrs []string) error
	// Delegates says which delegates may be dialed; nil is the air-gapped
	// policy (loopback only).
	Delegates *DelegatePolicy
	Policy    retry.Policy
	// PollInterval is how soon a queued or pinning request is asked again.
	PollInterval time.Duration
	// Workers bounds the requests in flight to one service.
	Workers int
	Now     func() time.Time
	Log     *slog.Logger
}

// NewPSA builds the backend for s (kind pinning-service). A missing token is
// not an error here: each push reports it, so `pins` shows it.
func NewPSA(s Service, o PSAOptions) (*PSA, error) {
	s = s.WithDefaults()
	if s.Kind != KindPinningService {
		return nil, fmt.Errorf("service %s: kind %q does not speak the Pinning Service API", s.Name, s.Kind)
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	// net/http follows redirects to another port, and from https to http,
	// with the Authorization header still on (it strips it only for another
	// host). The token belongs to the configured origin: a redirect to any
	// other origin is refused, never followed without the token either,
	// so the operator sees it and fixes the endpoint.
	hc := *o.HTTPClient
	hc.CheckRedirect = sameOriginRedirects(s.Endpoint)
	o.HTTPClient = &hc
	if o.Delegates == nil {
		p := AirGappedDelegates()
		o.Delegates = &p
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Policy == (retry.Policy{}) {
		o.Policy = retry.Default()
	}
	return &PSA{svc: s, token: o.Getenv(s.TokenEnv), endpoint: strings.TrimRight(s.Endpoint, "/"), o: o}, nil
}

// Name is the service's name.
func (p *PSA) Name() string { return p.svc.Name }

// Push advances each request one step: find or create the pin, or poll it.
func (p *PSA) Push(ctx context.Context, reqs []*Request) error {
	if p.token == "" && !p.svc.TokenOptional {
		return fmt.Errorf("service %s: environment variable %s is not set (it holds the service's access token)", p.svc.Name, p.svc.TokenEnv)
	}
	work := make(chan *Request)
	var wg sync.WaitGroup
	for range min(p.o.Workers, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				p.step(ctx, r)
			}
		}()
	}
	for _, r := range reqs {
		if ctx.Err() != nil {
			break
		}
		work <- r
	}
	close(work)
	wg.Wait()
	return nil
}

// HTTPError is an answer other than 2xx.
type HTTPError struct {
	Code       int
	Reason     string
	Details    string
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.Code)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Details != "" {
		msg += ": " + e.Details
	}
	return msg
}

// Permanent reports whether retrying cannot help: the service refused the
// request itself (400 bad request, 401/403 token, 409 e.g.
// INSUFFICIENT_FUNDS, other 4xx but 408, 425 and 429).
func (e *HTTPError) Permanent() bool {
	return !retry.Transient(e.Code) && e.Code >= 400 && e.Code < 500
}

// answerError is an answer this client refuses (too large, a redirect to
// another origin, an unusable request id): the service or the endpoint is
// wrong, so retrying on a schedule cannot help.
type answerError struct{ msg string }

func (e *answerError) Error() string   { return e.msg }
func (e *answerError) Permanent() bool { return true }

// maxAnswer bounds what is read of one answer: a page of 1000 pin statuses
// is well under a MiB.
const maxAnswer = 8 << 20

// Bounds on the service's words kept with a request.
const (
	maxReason  = 200
	maxDetails = 300
	maxID      = 128
)

// stepTimeout bounds one step of one request (a find may page through
// several answers), whatever the service does.
const stepTimeout = 2 * time.Minute

func sameOriginRedirects(endpoint string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return &answerError{"the service redirected more than 5 times; fix the endpoint in the config"}
		}
		from, err := url.Parse(endpoint)
		if err == nil && origin(req.URL) == origin(from) {
			return nil
		}
		return &answerError{fmt.Sprintf("the service redirected to another origin (%s); the token is not sent there: fix the endpoint in the config", servicetext.Clean(redactURL(origin(req.URL)), 200))}
	}
}

// origin is scheme://host:port with the default port spelled out.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

func (p *PSA) step(ctx context.Context, r *Request) {
	if until := p.pausedUntil.Load(); until > 0 && p.o.Now().UnixNano() < until {
		r.NextAttempt = time.Unix(0, until).UTC()
		return
	}
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	var st *openapi.PinStatus
	var err error
	if r.RequestID == "" {
		// A pin for this CID may exist already: we made it and crashed
		// before saving its id, or someone else did. Reuse it, never
		// create a duplicate.
		st, err = p.find(ctx, r.CID)
		if err == nil && st == nil {
			st, err = p.create(ctx, r)
		}
	} else {
		st, err = p.status(ctx, r.RequestID)
		var he *HTTPError
		if errors.As(err, &he) && he.Code == http.StatusNotFound {
			// The service forgot the request (deleted by hand, say):
			// ask again from scratch on the next step.
			r.LastError = fmt.Sprintf("service no longer knows request %s; it will be requested again", r.RequestID)
			r.RequestID, r.Status, r.NextAttempt, r.Updated = "", StatusQueued, p.o.Now(), p.o.Now()
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		p.fail(r, err)
		return
	}
	p.apply(ctx, r, st)
}

func (p *PSA) apply(ctx context.Context, r *Request, st *openapi.PinStatus) {
	now := p.o.Now()
	if !usableID(st.Requestid) {
		p.fail(r, &answerError{fmt.Sprintf("the service answered an unusable requestid %q (empty, longer than %d bytes, or not printable ASCII)", p.redact(st.Requestid, 60), maxID)})
		return
	}
	r.RequestID = st.Requestid
	r.Attempts = 0
	r.LastError = ""
	switch Status(st.Status) {
	case StatusPinned:
		r.Status = StatusPinned
	case StatusFailed:
		r.Status = StatusFailed
		r.Permanent = true
		r.LastError = "the service reports the pin failed"
		if st.Info != nil {
			if d := (*st.Info)["status_details"]; d != "" {
				r.LastError += ": " + p.redact(d, maxDetails)
			}
		}
	case StatusQueued, StatusPinning:
		r.Status = Status(st.Status)
		r.NextAttempt = now.Add(p.o.PollInterval)
		p.connect(ctx, r, st.Delegates)
	default:
		p.fail(r, &answerError{fmt.Sprintf("the service answered an unknown status %q", p.redact(string(st.Status), 40))})
		return
	}
	r.Updated = now
}

// connect dials the delegates the node's policy allows; the others are
// named on the request (never dialed), so the operator sees why a service
// that only offers those cannot fetch from us.
func (p *PSA) connect(ctx context.Context, r *Request, delegates []string) {
	if p.o.Connect == nil || len(delegates) == 0 {
		return
	}
	ok, refused := p.o.Delegates.Filter(delegates)
	var notes []string
	if len(refused) > 0 {
		notes = append(notes, fmt.Sprintf("not dialing %d of the service's delegates: %s", len(refused), strings.Join(refused[:min(len(refused), 3)], "; ")))
		p.o.Log.Warn("delegates refused", "service", p.svc.Name, "profile", p.o.Delegates.Profile, "refused", len(refused))
	}
	if len(ok) > 0 {
		if err := p.o.Connect(ctx, ok); err != nil {
			// Not fatal: the service may still find us through origins.
			notes = append(notes, "connecting to the service's delegates: "+p.redact(err.Error(), maxDetails))
			p.o.Log.Debug("delegates not reachable", "service", p.svc.Name, "err", err)
		}
	}
	if len(notes) > 0 {
		r.LastError = truncate(strings.Join(notes, "; "), 600)
	}
}

// usableID accepts what a request id may be: short printable ASCII. It is
// kept in the queue and the manifest and goes into URLs.
func usableID(id string) bool {
	if id == "" || len(id) > maxID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] >= 0x7f {
			return false
		}
	}
	return true
}

func (p *PSA) fail(r *Request, err error) {
	now := p.o.Now()
	r.LastError = p.redact(err.Error(), 600)
	r.Updated = now
	var perm interface{ Permanent() bool }
	if errors.As(err, &perm) && perm.Permanent() {
		r.Status = StatusFailed
		r.Permanent = true
		return
	}
	var he *HTTPError
	r.Attempts++
	var after time.Duration
	if errors.As(err, &he) && he.RetryAfter > 0 {
		after = he.RetryAfter
		if he.Code == http.StatusTooManyRequests {
			p.pausedUntil.Store(now.Add(min(after, p.o.Policy.Max)).UnixNano())
		}
	}
	r.NextAttempt = now.Add(p.o.Policy.Next(r.Attempts, after))
}

// redact makes text a service sent back safe to print and keep: the token
// removed in whatever case or encoding it was echoed (a careless service
// may quote the Authorization header), control characters and terminal
// escapes removed, at most n bytes.
func (p *PSA) redact(s string, n int) string {
	return servicetext.Safe(s, n, p.token)
}

// find returns the best existing pin for c (pinned, else pinning, else
// queued; failed ones do not count), following pagination.
func (p *PSA) find(ctx context.Context, c string) (*openapi.PinStatus, error) {
	q := url.Values{}
	q.Set("cid", c)
	q.Set("status", "queued,pinning,pinned")
	q.Set("limit", "1000")
	var best *openapi.PinStatus
	var cursor time.Time // the last "before" sent; zero on the first page
	rank := map[openapi.Status]int{"queued": 1, "pinning": 2, "pinned": 3}
	for page := 0; page < 100; page++ {
		var res openapi.PinResults
		if err := p.do(ctx, http.MethodGet, "/pins", q, nil, &res); err != nil {
			return nil, err
		}
		for i := range res.Results {
			st := &res.Results[i]
			if !sameContent(st.Pin.Cid, c) {
				continue
			}
			if best == nil || rank[st.Status] > rank[best.Status] ||
				rank[st.Status] == rank[best.Status] && st.Created.After(best.Created) {
				best = st
			}
		}
		if len(res.Results) == 0 || int(res.Count) <= len(res.Results) {
			break
		}
		oldest := res.Results[0].Created
		for _, st := range res.Results {
			if st.Created.Before(oldest) {
				oldest = st.Created
			}
		}
		if !cursor.IsZero() && !oldest.Before(cursor) {
			// The page did not move back in time: a broken or hostile
			// service would hand us the same page until the cap.
			break
		}
		cursor = oldest
		q.Set("before", oldest.UTC().Format(time.RFC3339Nano))
	}
	return best, nil
}

func (p *PSA) create(ctx context.Context, r *Request) (*openapi.PinStatus, error) {
	pin := openapi.Pin{Cid: r.CID}
	if name := truncate(r.Name, 255); name != "" {
		pin.Name = &name
	}
	if p.o.Origins != nil {
		if o := p.o.Origins(); len(o) > 0 {
			o = o[:min(len(o), 20)]
			pin.Origins = &o
		}
	}
	meta := r.Meta.Map()
	pin.Meta = &meta
	var st openapi.PinStatus
	if err := p.do(ctx, http.MethodPost, "/pins", nil, pin, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (p *PSA) status(ctx context.Context, id string) (*openapi.PinStatus, error) {
	var st openapi.PinStatus
	if err := p.do(ctx, http.MethodGet, "/pins/"+url.PathEscape(id), nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (p *PSA) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := p.endpoint + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %v", method, redactURL(u), errors.Unwrap(err))
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "ssid-anchor")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.o.HTTPClient.Do(req)
	if err != nil {
		// *url.Error prints the whole URL; name the endpoint without
		// credentials or query and keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var ae *answerError
		if errors.As(err, &ae) {
			return fmt.Errorf("%s %s%s: %w", method, redactURL(p.endpoint), path, ae)
		}
		return fmt.Errorf("%s %s%s: %w", method, redactURL(p.endpoint), path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("%s %s%s: reading the answer: %w", method, redactURL(p.endpoint), path, err)
	}
	if len(b) > maxAnswer {
		return &answerError{fmt.Sprintf("%s %s%s: the answer is larger than %d MiB; refused", method, redactURL(p.endpoint), path, maxAnswer>>20)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &HTTPError{Code: resp.StatusCode}
		var f openapi.Failure
		if json.Unmarshal(b, &f) == nil && f.Error.Reason != "" {
			he.Reason = p.redact(f.Error.Reason, maxReason)
			if f.Error.Details != nil {
				he.Details = p.redact(*f.Error.Details, maxDetails)
			}
		} else if len(b) > 0 {
			he.Details = p.redact(string(b), maxReason)
		}
		if p.token == "" && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			he.Details = strings.TrimPrefix(he.Details+"; ", "; ") + fmt.Sprintf("no token was sent: set %s", p.svc.TokenEnv)
		}
		if d, ok := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), p.o.Now()); ok {
			he.RetryAfter = d
		}
		return he
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s%s: the answer is not a valid %T: %v", method, redactURL(p.endpoint), path, out, p.redact(err.Error(), maxReason))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// sameContent compares CIDs as services may echo them: a service can answer
// a CIDv0 query with the same DAG as CIDv1 in base32.
func sameContent(a, b string) bool {
	if a == b {
		return true
	}
	ca, err1 := cid.Decode(a)
	cb, err2 := cid.Decode(b)
	return err1 == nil && err2 == nil && ca.Type() == cb.Type() && ca.Hash().HexString() == cb.Hash().HexString()
}
