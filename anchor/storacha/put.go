package storacha

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ssid/ssid-anchor/anchor/addrclass"
	"github.com/ssid/ssid-anchor/anchor/servicetext"
)

// The service decides where a shard is PUT. Storacha hands out presigned
// https URLs of its storage nodes; a compatible deployment may upload to
// itself. Anything else is refused before a connection is made, and for
// good (retrying the same answer cannot help): plain http to another
// origin, other schemes (file:, gopher:), credentials in the URL, and
// addresses this node must not be pointed at (link-local, which holds the
// cloud metadata services; loopback and private ones unless the bridge
// itself is there).

// checkPutURL checks the upload URL as written.
func checkPutURL(raw, endpoint string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("the service gave an unusable upload URL (%s); refused", servicetext.Clean(redactURL(raw), 120))
	}
	shown := servicetext.Clean(redactURL(raw), 160)
	ep, _ := url.Parse(endpoint)
	sameOrigin := ep != nil && originOf(u) == originOf(ep)
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && sameOrigin:
	default:
		return fmt.Errorf("the upload URL %s uses %q; only https, or the bridge's own origin, is sent shards", shown, servicetext.Clean(u.Scheme, 20))
	}
	if u.Host == "" {
		return fmt.Errorf("the upload URL %s names no host; refused", shown)
	}
	if u.User != nil {
		return fmt.Errorf("the upload URL %s carries credentials in its host part; refused", shown)
	}
	if strings.EqualFold(strings.TrimSuffix(u.Hostname(), "."), "metadata.google.internal") {
		return fmt.Errorf("the upload URL %s names a cloud metadata service; refused", shown)
	}
	if c, ok := addrclass.OfHost(u.Hostname()); ok {
		if err := allowedClass(c, endpoint); err != nil {
			return fmt.Errorf("the upload URL %s: %w", shown, err)
		}
	}
	return nil
}

// allowedClass says whether an upload may go to an address of class c for
// a bridge at endpoint.
func allowedClass(c addrclass.Class, endpoint string) error {
	loopback, private := addrclass.Local(endpoint)
	switch c {
	case addrclass.Public:
		return nil
	case addrclass.Loopback:
		if loopback {
			return nil
		}
	case addrclass.Private:
		if private {
			return nil
		}
	}
	return fmt.Errorf("a %s address, which uploads for a bridge at %s may not go to; refused", c, servicetext.Clean(redactURL(endpoint), 120))
}

func originOf(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// dialRefused is a connection guardedTransport would not make.
type dialRefused struct{ msg string }

func (e *dialRefused) Error() string { return e.msg }

// guardedTransport is rt (net/http's default when nil) dialing only the
// addresses allowedClass accepts, checked on the address actually dialed,
// after name resolution. A RoundTripper that is not an *http.Transport is
// used as it is (tests); its URLs are still checked as written.
func guardedTransport(rt http.RoundTripper, endpoint string) http.RoundTripper {
	var t *http.Transport
	switch v := rt.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = v.Clone()
	default:
		return rt
	}
	d := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return &dialRefused{"upload: unusable address " + address}
			}
			a, err := netip.ParseAddr(host)
			if err != nil {
				return &dialRefused{"upload: unusable address " + address}
			}
			if err := allowedClass(addrclass.Of(a), endpoint); err != nil {
				return &dialRefused{"the upload URL's host resolves to " + a.String() + ", " + err.Error()}
			}
			return nil
		},
	}
	t.DialContext = d.DialContext
	t.Proxy = nil // a proxy would dial for us, unchecked
	return t
}

// stallWatch counts the bytes an exchange moves.
type stallWatch struct{ n atomic.Int64 }

// watchStall returns a context that ends (cause errStalled) when fewer than
// minBytes move in any window, and a stop function. A shard on a slow but
// moving line goes on; a peer that drips a byte a second, or accepts the
// body and never answers, is cut within a window or two.
func watchStall(ctx context.Context, window time.Duration, minBytes int64) (context.Context, *stallWatch, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &stallWatch{}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(window)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-t.C:
				cur := w.n.Load()
				if cur-last < minBytes {
					cancel(errStalled)
					return
				}
				last = cur
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, w, func() { close(done); cancel(nil) }
}

// countingReader counts what passes through r into w.
type countingReader struct {
	r io.Reader
	w *stallWatch
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.w.n.Add(int64(n))
	return n, err
}
