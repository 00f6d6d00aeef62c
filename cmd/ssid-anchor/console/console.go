package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Options tune the console; every field has a default.
type Options struct {
	// GatewayPrefix is where CID links point (default "/ipfs/": the
	// daemon's local read-only gateway on the same address).
	GatewayPrefix string
	// PageSize is the number of anchors per page (default 50).
	PageSize int
	// VerifyTimeout bounds a POST /verify (default 30 minutes).
	VerifyTimeout time.Duration
	// Hosts are the host names (without port) the console answers to
	// besides IP addresses and "localhost". A request naming any other host
	// is refused: that is how a DNS-rebinding page would reach a console on
	// loopback. A box served under a DNS name (http.allow_remote) lists it.
	Hosts []string
	Now   func() time.Time
	Log   *slog.Logger
}

type handler struct {
	src   Source
	o     Options
	page  *template.Template
	csrf  *http.CrossOriginProtection
	files http.Handler
}

// New returns the console. It serves GET / (the page, with ?q= to filter
// anchors by path, ?page=N, ?file=PATH for a file's history),
// /assets/console.css, /assets/icon.svg, and POST /verify. Everything else
// is 404; every method but GET and HEAD is 405, except POST /verify.
func New(src Source, o Options) http.Handler {
	if o.GatewayPrefix == "" {
		o.GatewayPrefix = "/ipfs/"
	}
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	if o.VerifyTimeout <= 0 {
		o.VerifyTimeout = 30 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	sub, _ := fs.Sub(assets, "assets")
	h := &handler{
		src:   src,
		o:     o,
		page:  template.Must(template.New("page.html").Funcs(funcs(o)).ParseFS(sub, "page.html")),
		csrf:  http.NewCrossOriginProtection(),
		files: http.FileServerFS(sub),
	}
	return h
}

// securityHeaders go on every answer: nothing from elsewhere may load, no
// one may frame the page, nothing is sniffed, and no URL leaks onwards.
func securityHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if !h.hostAllowed(r.Host) {
		http.Error(w, "the console does not answer to host "+strconv.Quote(r.Host)+"; open it by IP address or localhost (or list the name in the console's hosts)", http.StatusMisdirectedRequest)
		return
	}
	switch {
	case r.URL.Path == "/verify":
		h.serveVerify(w, r)
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the console is read-only: "+r.Method+" is not allowed here (only POST /verify changes anything)", http.StatusMethodNotAllowed)
		return
	case r.URL.Path == "/assets/console.css" || r.URL.Path == "/assets/icon.svg":
		w.Header().Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/assets")
		h.files.ServeHTTP(w, r2)
		return
	case r.URL.Path != "/":
		http.Error(w, "not found: the console serves / (see /healthz, /status, /metrics and /ipfs/<cid> on the daemon)", http.StatusNotFound)
		return
	}
	h.servePage(w, r)
}

func (h *handler) hostAllowed(hostport string) bool {
	host := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		host = hh
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" || strings.EqualFold(host, "localhost") || net.ParseIP(host) != nil {
		return true
	}
	for _, ok := range h.o.Hosts {
		if strings.EqualFold(host, ok) {
			return true
		}
	}
	return false
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	snap, err := h.src.Snapshot(r.Context())
	if err != nil {
		h.o.Log.Error("console snapshot", "err", err)
		http.Error(w, "reading the box's state: "+err.Error(), http.StatusInternalServerError)
		return
	}
	q := r.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	v := buildView(snap, viewRequest{
		Filter: q.Get("q"), File: q.Get("file"), Page: page, Host: r.Host,
	}, h.o)
	var buf bytes.Buffer
	if err := h.page.Execute(&buf, v); err != nil {
		h.o.Log.Error("console template", "err", err)
		http.Error(w, "rendering the console: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if v.NotFound {
		w.WriteHeader(http.StatusNotFound)
	}
	_, _ = w.Write(buf.Bytes())
}

// serveVerify is the only state-changing endpoint. It must be a POST, and a
// browser must send it from this origin: http.CrossOriginProtection reads
// Sec-Fetch-Site, or compares Origin with Host on older browsers; a request
// with neither header (curl on the box) is not a cross-site request.
func (h *handler) serveVerify(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST /verify runs a verification; use: curl -X POST http://"+r.Host+"/verify", http.StatusMethodNotAllowed)
		return
	}
	if err := h.csrf.Check(r); err != nil {
		h.o.Log.Warn("console refused a cross-origin POST /verify", "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		http.Error(w, "refused: POST /verify must come from this console's own origin", http.StatusForbidden)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.VerifyTimeout)
	defer cancel()
	err := h.src.VerifyNow(ctx)
	switch {
	case errors.Is(err, ErrBusy):
		http.Error(w, err.Error()+"; its result will show on the console when it ends", http.StatusConflict)
		return
	case err != nil:
		http.Error(w, "verification could not run: "+err.Error(), http.StatusInternalServerError)
		return
	}
	summary := "verification finished"
	if snap, err := h.src.Snapshot(r.Context()); err == nil && snap.Verify != nil {
		summary = verifySummary(snap.Verify)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, summary)
}

func verifySummary(v *VerifyRun) string {
	r := v.Result
	switch {
	case v.Err != "":
		return "verification could not finish: " + v.Err
	case r == nil:
		return "verification finished"
	case r.OK && !r.RollbackChecked && r.RollbackDetail != "":
		// The rollback check was off: a pass must not look like one that made it.
		return fmt.Sprintf("verified: all %d records passed, manifest chain of %d intact; %s", r.Passed, r.ChainLength, r.RollbackDetail)
	case r.OK:
		return fmt.Sprintf("verified: all %d records passed, manifest chain of %d intact", r.Passed, r.ChainLength)
	default:
		return fmt.Sprintf("verification FAILED: %d passed, %d failed, chain ok: %v", r.Passed, r.Failed, r.ChainOK)
	}
}
