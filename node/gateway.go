package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
)

// Gateway reads anchors from an HTTP gateway the trustless way: it asks for
// the DAG as a CAR (or block by block as raw when the gateway cannot send a
// CAR), checks every block against its CID and rebuilds the file from the
// checked blocks only. Nothing the gateway says is taken on trust.
type Gateway struct {
	base    string
	client  *http.Client
	timeout time.Duration
	tmpDir  string
}

// NewGateway checks base (http or https, like http://127.0.0.1:8080) and
// returns a reader. timeout bounds each request's silence: a response that
// sends nothing for that long is abandoned (0 means 30 s). Large CARs are
// spooled to tmpDir ("" means the system temp dir), never held in memory.
func NewGateway(base string, timeout time.Duration, tmpDir string) (*Gateway, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway %q: must be an http(s) URL like http://127.0.0.1:8080", base)
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	base = strings.TrimSuffix(base, "/")
	base = strings.TrimSuffix(base, "/ipfs")
	return &Gateway{
		base:    base,
		client:  &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: timeout, MaxIdleConnsPerHost: 8}},
		timeout: timeout,
		tmpDir:  tmpDir,
	}, nil
}

// Name says where the blocks come from.
func (g *Gateway) Name() string { return "gateway " + g.base }

// errNotTrustless means the gateway answered but not with a CAR.
var errNotTrustless = errors.New("gateway did not answer with a CAR")

// ReadFile fetches the file at c, checks every block and streams the bytes
// to w. It stops once the blocks read exceed maxBytes (see MaxDAGBytes), and
// a CAR larger than those blocks plus their framing is not even spooled.
func (g *Gateway) ReadFile(ctx context.Context, c cid.Cid, maxBytes int64, w io.Writer) (int, error) {
	path, err := g.fetchCAR(ctx, c, maxBytes)
	if errors.Is(err, errNotTrustless) {
		return readFile(ctx, rawGateway{g}, c, maxBytes, w)
	}
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	set, err := OpenCARs([]string{path})
	if err != nil {
		return 0, err
	}
	defer set.Close()
	set.files[0].label = g.Name()
	n, err := readFile(ctx, set, c, maxBytes, w)
	if err != nil {
		if probs := set.problems[0]; len(probs) > 0 {
			err = fmt.Errorf("%w (the CAR it sent: %s)", err, strings.Join(probs, "; "))
		}
		return n, err
	}
	return n, nil
}

// fetchCAR spools GET /ipfs/<c>?format=car to a temp file, at most
// maxBytes of blocks plus their framing when maxBytes > 0.
func (g *Gateway) fetchCAR(ctx context.Context, c cid.Cid, maxBytes int64) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/ipfs/"+c.String()+"?format=car", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/vnd.ipld.car; version=1; order=dfs; dups=y")
	resp, err := g.do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return "", &BlockError{CID: c, Where: g.Name(), Kind: ErrBlockMissing, Cause: fmt.Errorf("HTTP %s", resp.Status)}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return "", fmt.Errorf("%s: HTTP %s for %s", g.Name(), resp.Status, c)
	default:
		return "", errNotTrustless
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/vnd.ipld.car" {
		return "", errNotTrustless
	}
	f, err := os.CreateTemp(g.tmpDir, "ssid-anchor-gateway-*.car")
	if err != nil {
		return "", fmt.Errorf("spooling the gateway's CAR: %w", err)
	}
	var stalled atomic.Bool
	idle := time.AfterFunc(g.timeout, func() { stalled.Store(true); cancel() })
	defer idle.Stop()
	var body io.Reader = idleReader{resp.Body, idle, g.timeout}
	spoolMax := int64(-1)
	if maxBytes > 0 {
		// CAR framing is a varint and a CID per block: under 1/16 of the
		// smallest block either profile writes, plus the header.
		spoolMax = maxBytes + maxBytes/16 + 1<<20
		body = io.LimitReader(body, spoolMax+1)
	}
	n, err := io.Copy(f, body)
	if err == nil && spoolMax >= 0 && n > spoolMax {
		err = &DAGLimitError{CID: c, Limit: maxBytes}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		if stalled.Load() {
			return "", fmt.Errorf("%s: no data for %s while sending %s", g.Name(), g.timeout, c)
		}
		return "", fmt.Errorf("%s: reading the CAR for %s: %w", g.Name(), c, err)
	}
	return f.Name(), nil
}

// do sends req, turning a timeout into a message that names the gateway.
func (g *Gateway) do(req *http.Request) (*http.Response, error) {
	resp, err := g.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %w", g.Name(), err)
	}
	return resp, nil
}

// idleReader pushes the silence deadline back whenever bytes arrive, so a
// big CAR may take as long as it needs while a stalled one is dropped.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}

// rawGateway asks for one block at a time with ?format=raw.
type rawGateway struct{ g *Gateway }

func (r rawGateway) getBlock(ctx context.Context, c cid.Cid) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.g.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.g.base+"/ipfs/"+c.String()+"?format=raw", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.ipld.raw")
	resp, err := r.g.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, &BlockError{CID: c, Where: r.g.Name(), Kind: ErrBlockMissing, Cause: fmt.Errorf("HTTP %s", resp.Status)}
	default:
		return nil, fmt.Errorf("%s: HTTP %s for block %s (it speaks neither ?format=car nor ?format=raw)", r.g.Name(), resp.Status, c)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSection+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading block %s: %w", r.g.Name(), c, err)
	}
	if len(data) > maxSection || !checkHash(c, data) {
		return nil, &BlockError{CID: c, Where: r.g.Name(), Kind: ErrBlockCorrupt}
	}
	return data, nil
}

// getBlocks requests siblings in parallel: one slow block does not hold up
// the others' transfers.
func (r rawGateway) getBlocks(ctx context.Context, cs []cid.Cid) ([][]byte, error) {
	out := make([][]byte, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = r.getBlock(ctx, c)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
