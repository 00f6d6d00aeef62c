package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestHTTPHandlerRoutes: /healthz follows readiness, /status serves the
// builder's document, and "/" is the console when one is given.
func TestHTTPHandlerRoutes(t *testing.T) {
	var ready atomic.Bool
	get := func(h http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(b)
	}
	h := newHTTPHandler(httpDeps{
		Ready:   ready.Load,
		Status:  func(context.Context) (any, error) { return map[string]any{"daemon_running": true}, nil },
		Console: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "console "+r.URL.Path) }),
	})
	if code, _ := get(h, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz before ready: %d", code)
	}
	ready.Store(true)
	if code, body := get(h, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz when ready: %d %q", code, body)
	}
	if code, body := get(h, "/status"); code != 200 || !strings.Contains(body, `"daemon_running": true`) {
		t.Errorf("/status: %d %q", code, body)
	}
	if code, body := get(h, "/anchors"); code != 200 || body != "console /anchors" {
		t.Errorf("console: %d %q", code, body)
	}
	// Without a console "/" lists what is served, with a 404.
	bare := newHTTPHandler(httpDeps{Ready: ready.Load})
	if code, body := get(bare, "/"); code != 404 || !strings.Contains(body, "/ipfs/<cid>") {
		t.Errorf("/ without console: %d %q", code, body)
	}
}
