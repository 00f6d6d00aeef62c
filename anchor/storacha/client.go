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

	"github.com/ssid/ssid-anchor/anchor/retry"
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
	cfg    Config
	http   *http.Client
	log    *slog.Logger
	key    crypto.PubKey // nil: receipts unverified
	issuer string
}

// New checks cfg and returns a client for it.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: cfg.Logger}
	hc := http.Client{Timeout: defaultHTTPTimeout}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	// net/http forwards custom headers such as X-Auth-Secret on redirects,
	// even to another host: follow none, so the tokens only ever reach the
	// configured endpoint. A redirect shows up as its 3xx status.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
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

// redact removes the tokens from text that came from outside (a service
// message, a transport error) before it goes into an error.
func (c *Client) redact(s string) string {
	for _, t := range []string{c.cfg.AuthSecret, c.cfg.Authorization} {
		if len(t) >= 4 {
			s = strings.ReplaceAll(s, t, "[redacted]")
		}
	}
	if len(s) > maxServiceMessage {
		s = s[:maxServiceMessage] + "…"
	}
	return s
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
		return nil, c.transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBodySize))
	if err != nil {
		return nil, &Error{Op: op, Transient: true, Msg: "reading the answer: " + c.redact(unwrapURLError(err).Error())}
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
// prints it whole, and a presigned PUT URL is a credential).
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	return &Error{Op: op, Transient: true, Msg: c.redact(unwrapURLError(err).Error())}
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
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	e := &Error{Op: op, Status: resp.StatusCode, Msg: c.redact(strings.TrimSpace(string(body)))}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		e.Transient = true
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

// parseRetryAfter is the project's one Retry-After reader (anchor/retry),
// which also caps a hostile delay-seconds so it cannot overflow a Duration.
func parseRetryAfter(v string, now time.Time) time.Duration {
	d, _ := retry.ParseRetryAfter(v, now)
	return d
}

// put sends the CAR file's exact bytes to url with exactly the headers the
// service returned (plus the Content-Length net/http derives from size).
func (c *Client) put(ctx context.Context, op, url string, headers map[string]string, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, f)
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
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	// A storage node's error may quote the presigned query (a credential).
	if q := req.URL.RawQuery; q != "" {
		body = bytes.ReplaceAll(body, []byte(q), []byte("…"))
	}
	return c.statusError(op, resp, body)
}
