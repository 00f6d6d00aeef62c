package tree

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// InitLine is the optional first line of a registry events log.
const InitLine = "Registry events initialized."

// Event is one object of the registry events log.
type Event struct {
	// Line and EndLine are the 1-based lines of the opening { and closing }.
	Line, EndLine int
	// Index is the event's 1-based place among the events of the log (of
	// the part read, for ScanEvents on a reader that starts mid-log).
	Index int
	// ProofAnchor is the SHA-256 of the event's exact bytes, { to }.
	ProofAnchor string
	// Raw is exactly those bytes; every key, known or not, is in it.
	Raw  json.RawMessage
	name string
	// fields is decoded on first use: a scan only needs the name, and
	// decoding every key of a million events would dominate it.
	fields *lazyFields
}

type lazyFields struct {
	once sync.Once
	m    map[string]json.RawMessage
}

// Fields returns every key of the event with its raw value.
func (e Event) Fields() map[string]json.RawMessage {
	if e.fields == nil {
		return nil
	}
	e.fields.once.Do(func() { _ = json.Unmarshal(e.Raw, &e.fields.m) })
	return e.fields.m
}

// Field returns a key's value as text: strings unquoted, anything else as
// its JSON text, "" when absent or null.
func (e Event) Field(key string) string {
	if key == "event" {
		return e.name
	}
	return rawText(e.Fields()[key])
}

func rawText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if len(raw) >= 2 && raw[0] == '"' && plainString(raw[1:len(raw)-1]) {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw)
}

// Name is the event's "event" key.
func (e Event) Name() string { return e.name }

// BadBlock is a part of the log that is not a JSON object. It is reported,
// never silently dropped.
type BadBlock struct {
	Line, EndLine int
	Reason        string
}

func (b BadBlock) String() string {
	if b.EndLine > b.Line {
		return fmt.Sprintf("lines %d-%d: %s", b.Line, b.EndLine, b.Reason)
	}
	return fmt.Sprintf("line %d: %s", b.Line, b.Reason)
}

// maxEventBytes bounds the memory one event may take; a block larger than
// this is reported and skipped.
const maxEventBytes = 1 << 20

// ScanEvents reads a registry events log and calls fn for each event in file
// order. It accepts the classic pretty form ({ and } alone on their lines),
// one object per line (JSONL), nested objects, and any mix of them. A block
// that is not a valid JSON object is returned in bad with its lines and the
// scan goes on. Memory use is bounded by the largest event, not the file.
// An error from fn stops the scan and is returned.
func ScanEvents(r io.Reader, fn func(Event) error) (bad []BadBlock, err error) {
	bad, _, err = scanEvents(r, true, fn)
	return bad, err
}

// scanEnd is the last point of a scan where no event was open: the bytes
// and lines read up to it, the events emitted before it and the last one's
// proof anchor. A cursor resumes there, so an event still being written at
// the end is read whole next time.
type scanEnd struct {
	Offset int64
	Lines  int
	Count  int
	Last   string
	// Header is the line of the "Registry events initialized." header the
	// scan skipped, 0 when it read none.
	Header int
}

// scanEvents scans r; atStart says r starts at the log's first byte, where
// the optional InitLine header may stand (anywhere else it is text outside
// any event, reported like any other).
func scanEvents(r io.Reader, atStart bool, fn func(Event) error) (bad []BadBlock, safe scanEnd, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		pos   int64 // bytes consumed
		count int
		last  string
	)
	var (
		lineNo    int
		buf       []byte // the current block, { .. so far
		start     int    // line of the block's {
		depth     int
		inStr     bool
		esc       bool
		overflow  bool
		seenFirst = !atStart
		header    int
	)
	const maxBad = 10000
	report := func(b BadBlock) {
		if len(bad) < maxBad {
			bad = append(bad, b)
		} else if len(bad) == maxBad {
			bad = append(bad, BadBlock{Line: b.Line, Reason: "too many bad blocks; further ones not listed"})
		}
	}
	emit := func(end int) error {
		defer func() { buf, depth, inStr, esc, overflow = buf[:0], 0, false, false, false }()
		if overflow {
			report(BadBlock{Line: start, EndLine: end, Reason: fmt.Sprintf("event larger than %d bytes", maxEventBytes)})
			return nil
		}
		if !validJSON(buf) {
			var probe any
			jerr := json.Unmarshal(buf, &probe) // only to say what is wrong
			report(BadBlock{Line: start, EndLine: end, Reason: "not a valid JSON object: " + jerr.Error()})
			return nil
		}
		sum := sha256.Sum256(buf)
		count++
		last = hex.EncodeToString(sum[:])
		return fn(Event{Line: start, EndLine: end, Index: count, ProofAnchor: last,
			Raw: append(json.RawMessage(nil), buf...), name: rawText(topLevelValue(buf, "event")), fields: &lazyFields{}})
	}
	// scan feeds bytes of a block through a string-aware brace counter and
	// reports whether the object closed, and where.
	scan := func(b []byte) (closedAt int) {
		for i := 0; i < len(b); i++ {
			c := b[i]
			if !esc && !braceOrQuote[c] {
				continue
			}
			switch {
			case esc:
				esc = false
			case inStr && c == '\\':
				esc = true
			case c == '"':
				inStr = !inStr
			case inStr:
			case c == '{':
				depth++
			case c == '}':
				depth--
				if depth == 0 {
					return i
				}
			}
		}
		return -1
	}
	for {
		line, n, rerr := readLine(br)
		if rerr != nil && rerr != io.EOF {
			return bad, safe, rerr
		}
		if line == nil && rerr == io.EOF {
			break
		}
		pos += n
		lineNo++
		body := trimEOL(line)
		inBlock := len(buf) > 0 || overflow
		startsObject := len(body) > 0 && body[0] == '{'
		switch {
		case inBlock && startsObject:
			// A new object at column 0 while one is open: the open one never closed.
			report(BadBlock{Line: start, EndLine: lineNo - 1, Reason: unclosed(overflow, "object not closed before the next one starts")})
			buf, depth, inStr, esc, overflow = buf[:0], 0, false, false, false
			fallthrough
		case !inBlock && startsObject:
			start = lineNo
			if err := feed(&buf, body, &overflow); err != nil {
				return bad, safe, err
			}
			if at := scan(body); at >= 0 {
				if !overflow { // past the limit buf holds nothing to cut
					buf = buf[:at+1]
				}
				if rest := bytes.TrimSpace(body[at+1:]); len(rest) > 0 {
					report(BadBlock{Line: lineNo, Reason: fmt.Sprintf("text after the object: %.40q", rest)})
				}
				if err := emit(lineNo); err != nil {
					return bad, safe, err
				}
			}
		case inBlock:
			if !overflow {
				buf = append(buf, '\n')
			}
			if err := feed(&buf, body, &overflow); err != nil {
				return bad, safe, err
			}
			at := scan(body)
			if at < 0 && len(body) > 0 && body[0] == '}' {
				// A } at column 0 ends a classic block even when the
				// brace count is off (a broken string inside); the JSON
				// check below then reports it.
				at = 0
			}
			if at >= 0 {
				if !overflow {
					buf = buf[:len(buf)-len(body)+at+1]
				}
				if err := emit(lineNo); err != nil {
					return bad, safe, err
				}
			}
		default:
			trimmed := bytes.TrimSpace(body)
			switch {
			case len(trimmed) == 0:
			case !seenFirst && string(trimmed) == InitLine:
				header = lineNo // the seed's header: not an event, said once (CursorRead.Header)
			default:
				report(BadBlock{Line: lineNo, Reason: fmt.Sprintf("text outside any event: %.60q", trimmed)})
			}
		}
		seenFirst = true
		if len(buf) == 0 && !overflow {
			// Lines counts newlines: a resumed read numbers the rest of an
			// unterminated last line as this same line.
			done := lineNo
			if line[len(line)-1] != '\n' {
				done--
			}
			safe = scanEnd{Offset: pos, Lines: done, Count: count, Last: last, Header: header}
		}
		if rerr == io.EOF {
			break
		}
	}
	if len(buf) > 0 || overflow {
		report(BadBlock{Line: start, EndLine: lineNo, Reason: unclosed(overflow, "object not closed at end of file")})
	}
	return bad, safe, nil
}

// unclosed names why a block never closed: past the size limit its braces
// are no longer followed (a line longer than the limit is cut), so the size
// is the problem to report, not the missing brace.
func unclosed(overflow bool, reason string) string {
	if overflow {
		return fmt.Sprintf("event larger than %d bytes", maxEventBytes)
	}
	return reason
}

func feed(buf *[]byte, b []byte, overflow *bool) error {
	if *overflow {
		return nil
	}
	if len(*buf)+len(b) > maxEventBytes {
		*overflow = true
		*buf = (*buf)[:0]
		return nil
	}
	*buf = append(*buf, b...)
	return nil
}

// readLine returns the next line including its newline and how many bytes
// it took; a line longer than the reader's buffer is returned whole
// (capped, the rest discarded, so one giant line cannot exhaust memory).
func readLine(br *bufio.Reader) ([]byte, int64, error) {
	line, err := br.ReadSlice('\n')
	if err == nil || err == io.EOF {
		if len(line) == 0 && err == io.EOF {
			return nil, 0, io.EOF
		}
		return line, int64(len(line)), err
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, 0, err
	}
	n := int64(len(line))
	out := append([]byte(nil), line...)
	for {
		more, err := br.ReadSlice('\n')
		n += int64(len(more))
		if len(out) <= maxEventBytes+1 {
			out = append(out, more...)
		}
		if err == nil || err == io.EOF {
			return out, n, err
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, 0, err
		}
	}
}

// ReadEventsFile scans the log at path; see ScanEvents.
// Inside the governance tree use Root.ReadEvents, which the kernel confines;
// this one is for a log given by path (tests, a copy carried in).
func ReadEventsFile(path string, fn func(Event) error) ([]BadBlock, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := regularOnly(f, path); err != nil {
		return nil, err
	}
	return ScanEvents(f, fn)
}

// topLevelValue returns the raw value of key in a valid JSON object without
// decoding the rest: a scan needs every event's name, and building a map
// per event would cost more than reading the log.
func topLevelValue(obj []byte, key string) (last json.RawMessage) {
	// With duplicate keys the last one wins, as in encoding/json.
	depth, i := 0, 0
	for i < len(obj) {
		c := obj[i]
		switch {
		case c == '"':
			end := skipString(obj, i)
			if depth == 1 {
				// A string at depth 1 followed by ':' is a key.
				j := end
				for j < len(obj) && isSpace(obj[j]) {
					j++
				}
				if j < len(obj) && obj[j] == ':' {
					if keyEquals(obj[i:end], key) {
						last = valueAt(obj, j+1)
					}
					i = j + 1
					continue
				}
			}
			i = end
			continue
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		}
		i++
	}
	return last
}

// keyEquals compares a quoted JSON key with key, decoding escapes only when
// the key has any.
func keyEquals(quoted []byte, key string) bool {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1:len(quoted)-1]) == key
	}
	var k string
	return json.Unmarshal(quoted, &k) == nil && k == key
}

// skipString returns the index just past the string starting at obj[i].
func skipString(obj []byte, i int) int {
	for j := i + 1; j < len(obj); j++ {
		switch obj[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(obj)
}

// valueAt returns the raw JSON value starting at or after obj[i].
func valueAt(obj []byte, i int) json.RawMessage {
	for i < len(obj) && isSpace(obj[i]) {
		i++
	}
	if i >= len(obj) {
		return nil
	}
	start := i
	if obj[i] == '"' {
		return obj[start:skipString(obj, i)]
	}
	depth := 0
	for ; i < len(obj); i++ {
		switch c := obj[i]; {
		case c == '"':
			i = skipString(obj, i) - 1
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 {
				return trimSpace(obj[start:i])
			}
			depth--
		case c == ',' && depth == 0:
			return trimSpace(obj[start:i])
		}
	}
	return trimSpace(obj[start:])
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimSpace(b []byte) json.RawMessage {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// braceOrQuote marks the bytes the block scanner must look at.
var braceOrQuote = [256]bool{'"': true, '\\': true, '{': true, '}': true}

// plainString reports whether a JSON string body needs no unescaping: no
// backslash, no control byte, valid UTF-8 (decoding would replace bad
// bytes).
func plainString(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return true
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
