package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// httpDeps is what the daemon's HTTP surface serves; each piece is
// optional so tests can mount only what they check.
type httpDeps struct {
	// Gateway serves /ipfs/<cid> from the local blockstore only.
	Gateway http.Handler
	// Ready reports whether node and scheduler are up (/healthz).
	Ready func() bool
	// Metrics serves Prometheus metrics.
	Metrics http.Handler
	// Status builds the document of `status --json`.
	Status func(ctx context.Context) (any, error)
	// Console is the web console (SPEC 4.8) mounted at "/"; nil answers
	// 404 with a list of what is served.
	Console http.Handler
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
	return mux
}

// httpHandler wires the daemon's pieces.
func (d *daemon) httpHandler() http.Handler {
	var console http.Handler
	if d.o.Console != nil {
		console = d.o.Console(d)
	}
	return newHTTPHandler(httpDeps{
		Gateway: d.node.GatewayHandler(),
		Ready:   d.ready.Load,
		Metrics: d.metrics.handler(),
		Status: func(ctx context.Context) (any, error) {
			return buildStatus(ctx, d.statusGlobals(), d.node, d)
		},
		Console: console,
	})
}
