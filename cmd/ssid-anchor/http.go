package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// httpDeps is what the daemon's HTTP surface serves; each piece is
// optional so tests can mount only what they check.
type httpDeps struct {
	// Gateway serves /ipfs/<cid> from the local blockstore only.
	Gateway http.Handler
	// Ready reports whether node and scheduler are up (/healthz).
	Ready func() bool
	// Problems lists what keeps a configured job from running; any makes
	// /healthz answer 503 with them (SPEC 4.5).
	Problems func() []string
	// Metrics serves Prometheus metrics.
	Metrics http.Handler
	// Status builds the document of `status --json`.
	Status func(ctx context.Context) (any, error)
	// Console is the web console (SPEC 4.8) mounted at "/"; nil answers
	// 404 with a list of what is served.
	Console http.Handler
	// Hosts decides which Host headers are answered; the zero value is
	// the loopback listener's (localhost and loopback addresses).
	Hosts hostCheck
}

// hostCheck refuses, with 421 Misdirected Request, a request whose Host
// header names a host the daemon is not opened by. That is the DNS
// rebinding defence for every route: a page on evil.example whose name is
// re-bound to 127.0.0.1 reaches the loopback listener as same-origin, but
// its requests still say Host: evil.example. IP literals cannot be
// re-bound, so a loopback listener answers its loopback addresses and
// localhost, and one opened to the network (http.allow_remote) answers any
// IP address; a name is answered only when it is the configured listen
// address's host. It is one check in front of the whole mux (the console
// keeps its own as well).
type hostCheck struct {
	names  []string // lower-case, without port or trailing dot
	remote bool
}

// newHostCheck is the policy for a listener on listen ("host:port").
func newHostCheck(listen string, allowRemote bool) hostCheck {
	h := hostCheck{remote: allowRemote}
	if host, _, err := net.SplitHostPort(listen); err == nil {
		if host = normHost(host); host != "" && net.ParseIP(host) == nil {
			h.names = append(h.names, host)
		}
	}
	return h
}

func normHost(hostport string) string {
	host := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		host = hh
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
}

func (h hostCheck) allowed(hostport string) bool {
	host := normHost(hostport)
	if host == "localhost" || slices.Contains(h.names, host) {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || h.remote)
}

func (h hostCheck) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.allowed(r.Host) {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "ssid-anchor does not answer to host "+strconv.Quote(r.Host)+": open it by 127.0.0.1, [::1] or localhost (or by the host name of http.listen)", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func newHTTPHandler(d httpDeps) http.Handler {
	mux := http.NewServeMux()
	if d.Gateway != nil {
		mux.Handle("/ipfs/", d.Gateway)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if d.Ready == nil || !d.Ready() {
			http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
			return
		}
		if d.Problems != nil {
			if ps := d.Problems(); len(ps) > 0 {
				http.Error(w, "degraded: a configured job cannot run\n"+strings.Join(ps, "\n"), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	if d.Metrics != nil {
		mux.Handle("GET /metrics", d.Metrics)
	}
	if d.Status != nil {
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
			defer cancel()
			doc, err := d.Status(ctx)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			writeJSON(w, doc)
		})
	}
	if d.Console != nil {
		mux.Handle("/", d.Console)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintln(w, "ssid-anchor daemon: /ipfs/<cid>, /healthz, /metrics, /status")
		})
	}
	return d.Hosts.wrap(mux)
}

// httpHandler wires the daemon's pieces.
func (d *daemon) httpHandler() http.Handler {
	var console http.Handler
	if d.o.Console != nil {
		console = d.o.Console(d)
	}
	cfg := d.config().HTTP
	return newHTTPHandler(httpDeps{
		Hosts:   newHostCheck(cfg.Listen, cfg.AllowRemote),
		Gateway: d.node.GatewayHandler(),
		Ready:   d.ready.Load,
		Problems: func() []string {
			var out []string
			for _, p := range d.configProblems() {
				out = append(out, p.String())
			}
			return out
		},
		Metrics: d.metricsHandler(),
		Status: func(ctx context.Context) (any, error) {
			return buildStatus(ctx, d.statusGlobals(), d.node, d)
		},
		Console: console,
	})
}

// metricsHandler recounts the pinned records (the repo's pin set, which
// can change without the manifest changing) before each scrape.
func (d *daemon) metricsHandler() http.Handler {
	h := d.metrics.handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.refreshAnchorStats()
		h.ServeHTTP(w, r)
	})
}
