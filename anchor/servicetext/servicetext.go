// Package servicetext makes text that came from a remote service (a pinning
// service's error reason, a bridge receipt's message, a storage node's
// answer) safe to print on a terminal and to keep in the queue: control
// characters, terminal escapes and bidirectional overrides go, the length is
// bounded, and the secrets the client sent are redacted however the service
// echoed them (any letter case, base64, hex or URL-escaped).
//
// No library does this: x/text/secure/precis refuses strings instead of
// cleaning them, and the redaction of encodings is specific to what an HTTP
// client sends.
package servicetext

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Redacted replaces a secret in service text.
const Redacted = "[redacted]"

// minSecret is the shortest secret redacted: shorter ones would blank out
// ordinary words.
const minSecret = 4

// Clean returns s as one printable line of at most limit bytes (limit <= 0:
// no bound): C0 and C1 control characters (ESC, so colours, OSC titles and
// clear-screen too), DEL and line breaks become spaces, bidirectional
// overrides and invalid UTF-8 are dropped, runs of spaces fold into one, and
// a longer text is cut on a character boundary and ends in "…".
func Clean(s string, limit int) string {
	var b strings.Builder
	b.Grow(min(len(s), growHint(limit)))
	space := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size <= 1:
			continue
		case unicode.IsControl(r) || unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case isBidi(r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		if limit > 0 && b.Len() > limit+utf8.UTFMax {
			break // enough to know it is cut
		}
	}
	out := b.String()
	if limit > 0 && len(out) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}

func growHint(limit int) int {
	if limit <= 0 {
		return 64
	}
	return limit + 8
}

// isBidi reports the formatting characters that reorder what a terminal
// shows (the "Trojan Source" characters).
func isBidi(r rune) bool {
	switch {
	case r == 0x061C, r == 0x200E, r == 0x200F:
		return true
	case r >= 0x202A && r <= 0x202E:
		return true
	case r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// Redact replaces each secret in s with Redacted, in any letter case and in
// the encodings a careless service might echo it in: base64 (standard and
// URL alphabets, with and without padding), hex and URL escaping. Secrets
// shorter than 4 bytes are left alone.
func Redact(s string, secrets ...string) string {
	if s == "" {
		return s
	}
	for _, sec := range secrets {
		if len(sec) < minSecret {
			continue
		}
		for _, form := range forms(sec) {
			if len(form) < minSecret || !containsFold(s, form) {
				continue
			}
			s = regexp.MustCompile("(?i)"+regexp.QuoteMeta(form)).ReplaceAllLiteralString(s, Redacted)
		}
	}
	return s
}

// Safe is Redact then Clean: what every piece of service text goes through
// before it is printed or stored. The text is cut only after redaction, so
// a secret straddling the bound cannot leave its first half behind.
func Safe(s string, limit int, secrets ...string) string {
	if limit > 0 {
		// Keep enough past the bound that a secret starting before it is
		// whole, then redact, then cut.
		longest := 0
		for _, sec := range secrets {
			longest = max(longest, 3*len(sec)+4)
		}
		if keep := 4*limit + longest; len(s) > keep {
			s = s[:keep]
		}
	}
	return Clean(Redact(s, secrets...), limit)
}

func forms(sec string) []string {
	b := []byte(sec)
	out := []string{sec,
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		hex.EncodeToString(b), url.QueryEscape(sec), url.PathEscape(sec)}
	// Longest first: a padded form must go before its unpadded prefix.
	seen := map[string]bool{}
	var uniq []string
	for _, f := range out {
		if !seen[f] {
			seen[f] = true
			uniq = append(uniq, f)
		}
	}
	for i := 1; i < len(uniq); i++ {
		for j := i; j > 0 && len(uniq[j]) > len(uniq[j-1]); j-- {
			uniq[j], uniq[j-1] = uniq[j-1], uniq[j]
		}
	}
	return uniq
}

// containsFold is a cheap pre-check before the regexp; for a secret that
// is not ASCII it lets the regexp (Unicode case folding) decide.
func containsFold(s, sub string) bool {
	if isASCII(sub) {
		return strings.Contains(asciiLower(s), asciiLower(sub))
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
