package storacha

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/ssid/ssid-anchor/anchor/servicetext"
	"github.com/ssid/ssid-anchor/scheduler/retry"
)

// Error is a failure talking to the bridge or the PUT target. Transient
// ones (connection errors, 5xx, 429) are worth retrying, after RetryAfter
// when the service said so; the others (401/403, an error in a receipt, a
// refused PUT) need the operator.
type Error struct {
	Op         string // what was being done ("store/add", "PUT shard bagb...")
	Status     int    // HTTP status, 0 for connection errors and receipt errors
	Transient  bool
	RetryAfter time.Duration
	Msg        string // the service's message, tokens redacted
	// Name is the out.error.name of the receipt that refused the task,
	// when a receipt did (HandlerNotFound, ServiceUnavailable, ...).
	Name string
}

// Gone says the service refused because it takes no such request any
// more: a verified (or, without service_did, unverified) receipt whose
// out.error.name is HandlerNotFound or ServiceUnavailable. Sending the same
// request again cannot help.
func (e *Error) Gone() bool { return isGone(e.Name) }

// IsGone reports whether err is such a refusal, and its Error.
func IsGone(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) && e.Gone() {
		return e, true
	}
	return nil, false
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
		if e.Msg != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Msg)
	if (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden) && !strings.HasPrefix(e.Op, "PUT") {
		b.WriteString(" (the bridge refused the tokens: make new ones with `storacha bridge generate-tokens SPACE --can store/add --can upload/add`)")
	}
	return b.String()
}

// IsTransient reports whether err is worth retrying and how long the
// service asked to wait (0: use the backoff).
func IsTransient(err error) (bool, time.Duration) {
	var e *Error
	if errors.As(err, &e) {
		return e.Transient, e.RetryAfter
	}
	return false, 0
}

// Client talks to one bridge.
type Client struct {
	cfg     Config
	http    *http.Client
	putHTTP *http.Client // for the upload URLs the service names
	log     *slog.Logger
	key     crypto.PubKey // nil: receipts unverified
	issuer  string
}

// New checks cfg and returns a client for it.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: cfg.Logger}
	// No whole-request timeout: a bridge answer is bounded by
	// AnswerTimeout and an upload by its progress (watchStall), so a large
	// shard on a slow line is not cut while a dripping peer is.
	hc := http.Client{}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	// net/http forwards custom headers such as X-Auth-Secret on redirects,
	// even to another host: follow none, so the tokens only ever reach the
	// configured endpoint. A redirect shows up as its 3xx status.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
	// The upload URL comes from the service: its connections are checked
	// when dialed, so a name that resolves to a metadata address is
	// refused too (checkPutURL checks the URL as written).
	pc := hc
	pc.Transport = guardedTransport(hc.Transport, cfg.Endpoint)
	c.putHTTP = &pc
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.ServiceDID != "" {
		k, err := parseDIDKey(cfg.ServiceDID)
		if err != nil {
			return nil, fmt.Errorf("service_did: %w", err)
		}
		c.key = k
		c.issuer = cfg.ServiceDID
		if cfg.ServiceIssuer != "" {
			c.issuer = cfg.ServiceIssuer
		}
	}
	return c, nil
}

// Verifies says whether receipts are checked against a service DID.
func (c *Client) Verifies() bool { return c.key != nil }

// redact makes text that came from outside (a service message, a
// transport error) safe to carry in an error, print and keep: the tokens
// (and extra secrets such as a presigned query) removed in any case or
// common encoding, control characters and terminal escapes removed, at
// most maxServiceMessage bytes.
func (c *Client) redact(s string, extra ...string) string {
	return servicetext.Safe(s, maxServiceMessage, append([]string{c.cfg.AuthSecret, c.cfg.Authorization}, extra...)...)
}

// task is one [ability, space, args] entry of a bridge request.
type task struct {
	ability string
	about   string // CID the task is about, for messages and evidence
	args    qp.Assemble
}

// invoke sends tasks in one request and returns their receipts in order,
// verified when a service DID is configured. A receipt that does not verify
// fails the whole call with ErrBadReceipt.
func (c *Client) invoke(ctx context.Context, op string, tasks []task) ([]*receipt, error) {
	body, err := qp.BuildMap(basicnode.Prototype.Any, 1, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "tasks", qp.List(int64(len(tasks)), func(la datamodel.ListAssembler) {
			for _, t := range tasks {
				qp.ListEntry(la, qp.List(3, func(la datamodel.ListAssembler) {
					qp.ListEntry(la, qp.String(t.ability))
					qp.ListEntry(la, qp.String(c.cfg.Space))
					qp.ListEntry(la, t.args)
				}))
			}
		}))
	})
	if err != nil {
		return nil, fmt.Errorf("%s: building request: %w", op, err)
	}
	var buf bytes.Buffer
	if err := dagjson.Encode(body, &buf); err != nil {
		return nil, fmt.Errorf("%s: encoding request: %w", op, err)
	}
	// The answer is small and quick; a bridge that drips it is cut.
	parent := ctx
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.answerTimeout(), errSlowAnswer)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.Endpoint, &buf)
	if err != nil {
		return nil, fmt.Errorf("%s: building request for the endpoint: %s", op, c.redact(err.Error()))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Auth-Secret", c.cfg.AuthSecret)
	req.Header.Set("Authorization", c.cfg.Authorization)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(parent, ctx, op, err)
	}
	defer resp.Body.Close()
	limit := answerLimit(len(tasks))
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, c.transportError(parent, ctx, op, fmt.Errorf("reading the answer: %w", err))
	}
	if int64(len(data)) > limit {
		return nil, &Error{Op: op, Status: resp.StatusCode, Msg: fmt.Sprintf("the bridge answered more than %d bytes for %d tasks; refused (a receipt is about a kilobyte)", limit, len(tasks))}
	}
	if e := c.statusError(op, resp, data); e != nil {
		return nil, e
	}
	rs, err := decodeReceipts(data)
	if err != nil {
		return nil, &Error{Op: op, Status: resp.StatusCode, Msg: c.redact(err.Error())}
	}
	if len(rs) != len(tasks) {
		return nil, &Error{Op: op, Msg: fmt.Sprintf("the bridge answered %d receipts for %d tasks", len(rs), len(tasks))}
	}
	if c.key != nil {
		for i, r := range rs {
			if err := r.verify(c.key, c.issuer); err != nil {
				return nil, fmt.Errorf("%s: receipt for %s %s: %w", op, tasks[i].ability, tasks[i].about, err)
			}
		}
	}
	c.log.Info("storacha bridge answered", "op", op, "tasks", len(tasks), "verified", c.key != nil)
	return rs, nil
}

// transportError wraps a net/http failure without its URL (*url.Error
// prints it whole, and a presigned PUT URL is a credential). parent is the
// caller's context (its end is the caller's business); ctx the call's own,
// whose end (a slow answer, a stalled upload) is a transient failure that
// says which.
func (c *Client) transportError(parent, ctx context.Context, op string, err error) error {
	if parent.Err() != nil {
		return fmt.Errorf("%s: %w", op, context.Cause(parent))
	}
	if ctx.Err() != nil {
		return &Error{Op: op, Transient: true, Msg: context.Cause(ctx).Error()}
	}
	return &Error{Op: op, Transient: true, Msg: c.redact(unwrapURLError(err).Error())}
}

var (
	errSlowAnswer = errors.New("no complete answer in time; the bridge is too slow or stalled")
	errStalled    = errors.New("the upload stalled (too few bytes moved in a minute)")
)

// answerLimit bounds what is read of a bridge answer for n tasks: a
// receipt is about a kilobyte; a stack trace in an error one a few more.
func answerLimit(n int) int64 {
	return min(int64(1<<20)+int64(n)*(64<<10), maxResponseBodySize)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if strings.Contains(err.Error(), "://") {
		return errors.New("connection failed (details withheld: they name the URL)")
	}
	return err
}

// statusError classifies a non-2xx answer.
func (c *Client) statusError(op string, resp *http.Response, body []byte) error {
	return c.statusErrorWith(op, resp, body)
}

// statusErrorWith is statusError redacting extra secrets from the body too.
func (c *Client) statusErrorWith(op string, resp *http.Response, body []byte, extra ...string) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	e := &Error{Op: op, Status: resp.StatusCode, Msg: c.redact(string(body), extra...)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		e.Transient = true
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

// parseRetryAfter is the project's one Retry-After reader (scheduler/retry),
// which also caps a hostile delay-seconds so it cannot overflow a Duration.
func parseRetryAfter(v string, now time.Time) time.Duration {
	d, _ := retry.ParseRetryAfter(v, now)
	return d
}

// put sends the CAR file's exact bytes to url with exactly the headers the
// service returned (plus the Content-Length net/http derives from size).
// The URL is the service's choice, so it is checked first (checkPutURL);
// the exchange is cut when it stops making progress (watchStall).
func (c *Client) put(ctx context.Context, op, rawURL string, headers map[string]string, path string, size int64) error {
	if err := checkPutURL(rawURL, c.cfg.Endpoint); err != nil {
		return &Error{Op: op, Msg: err.Error()}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer f.Close()
	parent := ctx
	ctx, w, stop := watchStall(ctx, c.cfg.stallWindow(), c.cfg.minProgress())
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, rawURL, countingReader{f, w})
	if err != nil {
		return &Error{Op: op, Msg: "the service gave an unusable upload URL"}
	}
	req.ContentLength = size
	for k, v := range headers {
		if strings.EqualFold(k, "Content-Length") {
			if v != strconv.FormatInt(size, 10) {
				return &Error{Op: op, Msg: fmt.Sprintf("the service expects %s bytes, the shard has %d", v, size)}
			}
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.putHTTP.Do(req)
	if err != nil {
		if blocked := (*dialRefused)(nil); errors.As(err, &blocked) {
			return &Error{Op: op, Msg: blocked.Error()}
		}
		return c.transportError(parent, ctx, op, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(countingReader{resp.Body, w}, 4096))
	// A storage node's error may quote the presigned query (a credential).
	if q := req.URL.RawQuery; q != "" {
		body = bytes.ReplaceAll(body, []byte(q), []byte("…"))
		return c.statusErrorWith(op, resp, body, q)
	}
	return c.statusError(op, resp, body)
}
