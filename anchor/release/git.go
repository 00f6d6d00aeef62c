package release

import (
	"bufio"
	"io"
	"net/url"
	"regexp"
	"strings"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

var shaRe = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// gitCommit reads the commit HEAD points to from .git inside the root,
// through the confined root, without a git binary (a CI image or the
// appliance may have none): a detached HEAD, a loose ref, or packed-refs.
// It returns "unknown" when the tree is not a plain git checkout (no .git,
// or a worktree whose .git file points outside the root).
func gitCommit(root tree.Root) string {
	head, err := readSmall(root, ".git/HEAD")
	if err != nil {
		return "unknown"
	}
	head = strings.TrimSpace(head)
	if shaRe.MatchString(head) {
		return head
	}
	ref, ok := strings.CutPrefix(head, "ref: ")
	if !ok || strings.Contains(ref, "..") {
		return "unknown"
	}
	ref = strings.TrimSpace(ref)
	if s, err := readSmall(root, ".git/"+ref); err == nil && shaRe.MatchString(strings.TrimSpace(s)) {
		return strings.TrimSpace(s)
	}
	packed, err := readSmall(root, ".git/packed-refs")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(packed, "\n") {
		sha, name, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && name == ref && shaRe.MatchString(sha) {
			return sha
		}
	}
	return "unknown"
}

// gitRepository is the origin remote of .git/config as a browsable https
// URL, credentials removed (a CI checkout may embed a token in it); "unknown"
// when there is none.
func gitRepository(root tree.Root) string {
	cfg, err := readSmall(root, ".git/config")
	if err != nil {
		return "unknown"
	}
	inOrigin := false
	sc := bufio.NewScanner(strings.NewReader(cfg))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			inOrigin = line == `[remote "origin"]`
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if inOrigin && ok && strings.TrimSpace(k) == "url" {
			return publicURL(strings.TrimSpace(v))
		}
	}
	return "unknown"
}

// publicURL turns a remote into https://host/owner/repo without user info.
func publicURL(remote string) string {
	if u, err := url.Parse(remote); err == nil && u.Host != "" {
		u.User = nil
		u.Scheme = "https"
		u.Path = strings.TrimSuffix(u.Path, ".git")
		u.RawQuery, u.Fragment = "", ""
		return u.String()
	}
	// scp-like: git@github.com:owner/repo.git
	if at := strings.Index(remote, "@"); at >= 0 {
		if host, p, ok := strings.Cut(remote[at+1:], ":"); ok {
			return "https://" + host + "/" + strings.TrimSuffix(strings.TrimPrefix(p, "/"), ".git")
		}
	}
	return "unknown"
}

func readSmall(root tree.Root, rel string) (string, error) {
	f, err := root.Open(rel)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b), err
}
