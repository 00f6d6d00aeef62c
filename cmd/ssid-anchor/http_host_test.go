package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestDaemonRefusesForeignHost is issue 25.9 against the real daemon: a
// request that names another host (what a DNS-rebinding page sends) gets
// 421 on every route, /status, /metrics and /ipfs/ included, as the
// console already did; the names the box is opened by still work.
func TestDaemonRefusesForeignHost(t *testing.T) {
	root := newTree(t)
	repo := initRepo(t)
	d := startDaemon(t, root, repo, nil)
	d.waitLog(t, `msg="job done" job=anchor`)
	cid := readManifest(t, root).Records[0].IPFSCID
	_, port, _ := strings.Cut(d.http, ":")
	get := func(host, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+d.http+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	paths := []string{"/status", "/metrics", "/ipfs/" + cid, "/healthz", "/"}
	for _, host := range []string{"evil.example:" + port, "rebind.attacker.test", "127.0.0.1.evil.example:" + port} {
		for _, p := range paths {
			if code, body := get(host, p); code != http.StatusMisdirectedRequest || !strings.Contains(body, "does not answer to host") {
				t.Errorf("Host %s %s: %d %.200q, want 421", host, p, code, body)
			}
		}
	}
	for _, host := range []string{d.http, "localhost:" + port, "[::1]:" + port} {
		for _, p := range paths {
			if code, body := get(host, p); code != http.StatusOK {
				t.Errorf("Host %s %s: %d %.200q, want 200", host, p, code, body)
			}
		}
	}
}
