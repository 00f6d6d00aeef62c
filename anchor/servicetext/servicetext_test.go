package servicetext

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"unicode"
)

func TestCleanRemovesTerminalControl(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"colour", "\x1b[31mred\x1b[0m text", "[31mred [0m text"},
		{"osc title", "a\x1b]0;owned\x07b", "a ]0;owned b"},
		{"clear screen", "\x1b[2J\x1b[Hdone", "[2J [Hdone"},
		{"c1 csi", "x\u009b31my", "x 31my"},
		{"newlines and tabs fold", "line one\r\n\tline two  ", "line one line two"},
		{"bidi override", "abc\u202Egnp.exe", "abcgnp.exe"},
		{"invalid utf-8", "ok\xff\xfe!", "ok!"},
		{"del", "a\x7fb", "a b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Clean(tc.in, 0)
			if got != tc.want {
				t.Fatalf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for _, r := range got {
				if unicode.IsControl(r) || isBidi(r) {
					t.Fatalf("Clean left %U in %q", r, got)
				}
			}
		})
	}
}

func TestCleanBoundsLength(t *testing.T) {
	got := Clean(strings.Repeat("é", 1000), 101)
	if len(got) > 101+len("…") || !strings.HasSuffix(got, "…") {
		t.Fatalf("%d bytes: %q", len(got), got)
	}
	if strings.ContainsRune(got, '\uFFFD') {
		t.Fatal("cut inside a character")
	}
	if got := Clean("short", 100); got != "short" {
		t.Fatal(got)
	}
}

func TestRedactAnyCaseAndEncoding(t *testing.T) {
	tok := "psaTest-0123456789abcdefXYZ"
	for name, echo := range map[string]string{
		"exact":      tok,
		"lower":      strings.ToLower(tok),
		"upper":      strings.ToUpper(tok),
		"base64":     base64.StdEncoding.EncodeToString([]byte(tok)),
		"base64url":  base64.RawURLEncoding.EncodeToString([]byte(tok)),
		"hex":        hex.EncodeToString([]byte(tok)),
		"hex upper":  strings.ToUpper(hex.EncodeToString([]byte(tok))),
		"url escape": url.QueryEscape(tok + "/+"),
	} {
		t.Run(name, func(t *testing.T) {
			secret := tok
			if name == "url escape" {
				secret = tok + "/+"
			}
			got := Safe("denied (got Bearer "+echo+") try again", 300, secret)
			if strings.Contains(strings.ToLower(got), strings.ToLower(echo)) || !strings.Contains(got, Redacted) {
				t.Fatalf("secret left in %q", got)
			}
		})
	}
	if got := Redact("abc", "ab"); got != "abc" {
		t.Fatalf("a 2-byte secret was redacted: %q", got)
	}
}

// TestSafeRedactsBeforeCutting: a secret straddling the length bound must
// not leave its first half behind.
func TestSafeRedactsBeforeCutting(t *testing.T) {
	tok := "SECRETTOKEN-abcdefghijklmnop"
	s := strings.Repeat("x", 290) + strings.ToLower(tok) + strings.Repeat("y", 50)
	got := Safe(s, 300, tok)
	if strings.Contains(strings.ToLower(got), "secrettoken") {
		t.Fatalf("part of the secret survived the cut: %q", got[280:])
	}
}
