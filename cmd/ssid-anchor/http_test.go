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
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = "127.0.0.1:8089"
		h.ServeHTTP(rec, req)
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

// TestHostCheck is the Host policy of every route (issue 25.9): names are
// what DNS rebinding forges, so only localhost and the listen address's
// own name are answered; IP literals cannot be re-bound, and a loopback
// listener answers its loopback addresses, one opened to the network
// (allow_remote) any address.
func TestHostCheck(t *testing.T) {
	loop := newHostCheck("127.0.0.1:8089", false)
	named := newHostCheck("governance.example.org:8089", true)
	wild := newHostCheck("0.0.0.0:8089", true)
	for _, tc := range []struct {
		h    hostCheck
		host string
		ok   bool
	}{
		{loop, "127.0.0.1:8089", true},
		{loop, "127.0.0.1", true},
		{loop, "[::1]:8089", true},
		{loop, "localhost:8089", true},
		{loop, "LOCALHOST.:8089", true},
		{loop, "", false},
		{loop, "evil.example:8089", false},
		{loop, "evil.example", false},
		{loop, "127.0.0.1.evil.example:8089", false},
		{loop, "localhost.evil.example", false},
		{loop, "192.0.2.7:8089", false},
		{loop, "governance.example.org:8089", false},
		{named, "governance.example.org:8089", true},
		{named, "Governance.Example.Org.", true},
		{named, "192.0.2.7:8089", true},
		{named, "evil.example:8089", false},
		{wild, "192.0.2.7:8089", true},
		{wild, "[2001:db8::7]:8089", true},
		{wild, "localhost", true},
		{wild, "evil.example", false},
	} {
		if got := tc.h.allowed(tc.host); got != tc.ok {
			t.Errorf("%+v allowed(%q) = %v, want %v", tc.h, tc.host, got, tc.ok)
		}
	}
}
