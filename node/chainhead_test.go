package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChainHeadNeverQuotesTheFile: whatever the chain head file holds or
// points to, an error names the file and what is wrong, never its content
// (issue 25.11: main quoted the whole file, so a symlink to a secret file
// printed the secret).
func TestChainHeadNeverQuotesTheFile(t *testing.T) {
	const secret = "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T000/B000/s3cr3t-t0ken"
	const validCID = "QmPZ9gcCEpqKTo6aq61g2nXGUhM4iCL3ewB6LDXZCtioEB"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, repo, head string)
		want  string // in the error; "" means no error
		cid   string
	}{
		{"missing", func(t *testing.T, repo, head string) {}, "", ""},
		{"a CID", func(t *testing.T, repo, head string) { writeHeadFile(t, head, validCID+"\n") }, "", validCID},
		{"a secret instead of a CID", func(t *testing.T, repo, head string) { writeHeadFile(t, head, secret+"\n") }, "does not hold a CID", ""},
		{"a symlink to a secret file", func(t *testing.T, repo, head string) {
			s := filepath.Join(t.TempDir(), "secrets.env")
			writeHeadFile(t, s, secret+"\n")
			if err := os.Symlink(s, head); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink", ""},
		{"a symlink to a file holding a CID", func(t *testing.T, repo, head string) {
			s := filepath.Join(t.TempDir(), "cid")
			writeHeadFile(t, s, validCID)
			if err := os.Symlink(s, head); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink", ""},
		{"a large file", func(t *testing.T, repo, head string) { writeHeadFile(t, head, strings.Repeat(secret+"\n", 1000)) }, "holds one CID", ""},
		{"a directory", func(t *testing.T, repo, head string) { os.Mkdir(head, 0o755) }, "not a regular file", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			n := &Node{repoPath: repo}
			head := filepath.Join(repo, chainHeadFile)
			tc.setup(t, repo, head)
			got, err := n.ChainHead()
			if tc.want == "" {
				if err != nil || got != tc.cid {
					t.Fatalf("ChainHead = %q, %v; want %q", got, err, tc.cid)
				}
				return
			}
			if err == nil {
				t.Fatalf("ChainHead = %q, want an error", got)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, head) {
				t.Fatalf("error %q must name %s and say %q", msg, head, tc.want)
			}
			for _, leak := range []string{"s3cr3t", "hooks.slack.com", "SLACK_WEBHOOK", validCID} {
				if strings.Contains(msg, leak) {
					t.Fatalf("error quotes the file's content (%q): %s", leak, msg)
				}
			}
		})
	}
}

func writeHeadFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
