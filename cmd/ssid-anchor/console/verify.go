package console

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ssid/ssid-anchor/anchor"
)

// The compact result keeps what the page shows and no more, so it stays
// small enough to keep in the repo (a 16,500-record verification is about
// 200 KB) whatever the manifest holds: per record one verdict byte and an
// 8-hex key, the first maxFailures failures with their reasons (each reason
// cut at maxDetail bytes), the first maxProblems chain and signature
// problems.
const (
	maxFailures = 100
	maxProblems = 20
	maxDetail   = 400
	// maxVerdicts bounds the per-record part: beyond it, a verification
	// keeps its counts and failures, and the rows show no verdict.
	maxVerdicts = 2_000_000
	// MaxSavedVerify bounds what LoadVerifyRun reads.
	MaxSavedVerify = 32 << 20
)

// Verdict bytes of VerifyResult.Verdicts.
const (
	verdictPassed    = '+'
	verdictFailed    = 'x'
	verdictUnchecked = '.'
)

// VerifyResult is a verification's outcome in the compact form the console
// keeps.
type VerifyResult struct {
	OK     bool `json:"ok"`
	Passed int  `json:"passed"`
	Failed int  `json:"failed"`
	// ManifestCID is the manifest that was verified.
	ManifestCID string `json:"manifest_cid"`

	ChainOK       bool     `json:"chain_ok"`
	ChainLength   int      `json:"chain_length"`
	ChainProblems []string `json:"chain_problems,omitempty"`

	SignaturesOK      bool     `json:"signatures_ok"`
	SignatureProblems []string `json:"signature_problems,omitempty"`

	// RollbackChecked says whether the manifest was compared with the
	// chain head the repo committed; RollbackDetail why not, or the verdict.
	RollbackChecked bool   `json:"rollback_checked"`
	RollbackDetail  string `json:"rollback_detail,omitempty"`

	// Verdicts holds one byte per record of the verified manifest, by
	// index: '+' passed, 'x' failed, '.' not checked. Keys holds 8 hex
	// digits per record (RecordKey), so a verdict is shown on a record only
	// while it is the same record (same path, hash and CID).
	Verdicts string `json:"verdicts"`
	Keys     string `json:"keys"`

	// Failures are the first failed records with their failed checks;
	// MoreFailures counts those left out.
	Failures     []RecordFailure `json:"failures,omitempty"`
	MoreFailures int             `json:"more_failures,omitempty"`
}

// RecordFailure is a failed record and why.
type RecordFailure struct {
	Index    int            `json:"index"`
	FilePath string         `json:"file_path"`
	Checks   []anchor.Check `json:"checks"`
}

// Records is how many records the verification checked.
func (r *VerifyResult) Records() int { return r.Passed + r.Failed }

// RecordKey identifies a record's content (path, SHA-256, CID) in 8 hex
// digits: a record rewritten or replaced after a verification gets another
// key, and the verdict is not shown on it.
func RecordKey(path, hash, cid string) string {
	h := sha256.New()
	io.WriteString(h, path)
	h.Write([]byte{0})
	io.WriteString(h, hash)
	h.Write([]byte{0})
	io.WriteString(h, cid)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// verdictFor says what the verification found for record i of the current
// manifest: "ok", "failed", or "" when it did not check this record (it
// was anchored or changed since).
func (r *VerifyResult) verdictFor(i int, rec *anchor.Record) string {
	if r == nil || i >= len(r.Verdicts) || (i+1)*8 > len(r.Keys) {
		return ""
	}
	if r.Keys[i*8:(i+1)*8] != RecordKey(rec.FilePath, rec.FileHash, rec.IPFSCID) {
		return ""
	}
	switch r.Verdicts[i] {
	case verdictPassed:
		return "ok"
	case verdictFailed:
		return "failed"
	}
	return ""
}

// failure returns the kept failure of record i, if it is among them.
func (r *VerifyResult) failure(i int) *RecordFailure {
	for k := range r.Failures {
		if r.Failures[k].Index == i {
			return &r.Failures[k]
		}
	}
	return nil
}

// Recorder is an anchor.RecordSink that keeps the compact result while a
// verification streams its records, so a large manifest's full report is
// never held in memory.
type Recorder struct {
	res      VerifyResult
	verdicts []byte
	keys     []byte
}

// Begin implements anchor.RecordSink.
func (c *Recorder) Begin(rep *anchor.VerifyReport) error {
	c.res.ManifestCID = rep.ManifestCID
	return nil
}

// Record implements anchor.RecordSink.
func (c *Recorder) Record(r anchor.RecordResult) error {
	// Results come in record order; an index that skips ahead leaves the
	// records between unchecked.
	for len(c.verdicts) < r.Index && len(c.verdicts) < maxVerdicts {
		c.verdicts = append(c.verdicts, verdictUnchecked)
		c.keys = append(c.keys, "00000000"...)
	}
	v := byte(verdictUnchecked)
	switch {
	case r.Checks == nil:
	case r.OK:
		v = verdictPassed
	default:
		v = verdictFailed
		if len(c.res.Failures) < maxFailures {
			f := RecordFailure{Index: r.Index, FilePath: r.FilePath}
			for _, ch := range r.Failed() {
				ch.Detail = cut(ch.Detail, maxDetail)
				f.Checks = append(f.Checks, ch)
			}
			c.res.Failures = append(c.res.Failures, f)
		} else {
			c.res.MoreFailures++
		}
	}
	if len(c.verdicts) == r.Index && len(c.verdicts) < maxVerdicts {
		c.verdicts = append(c.verdicts, v)
		c.keys = append(c.keys, RecordKey(r.FilePath, r.FileHash, r.IPFSCID)...)
	}
	return nil
}

// Result completes the compact result with the report's verdicts.
func (c *Recorder) Result(rep *anchor.VerifyReport) *VerifyResult {
	res := c.res
	res.Verdicts, res.Keys = string(c.verdicts), string(c.keys)
	res.OK, res.Passed, res.Failed = rep.OK, rep.Passed, rep.Failed
	res.ManifestCID = rep.ManifestCID
	res.ChainOK, res.ChainLength = rep.Chain.OK, len(rep.Chain.Manifests)
	res.ChainProblems = bounded(rep.Chain.Problems)
	res.SignaturesOK = rep.Signatures.OK
	var sig []string
	for _, m := range rep.Signatures.Manifests {
		if !m.OK {
			sig = append(sig, fmt.Sprintf("manifest %s: %s", m.CID, m.Detail))
		}
	}
	res.SignatureProblems = bounded(sig)
	res.RollbackChecked, res.RollbackDetail = rep.Rollback.Checked, cut(rep.Rollback.Detail, maxDetail)
	return &res
}

func bounded(ss []string) []string {
	var out []string
	for i, s := range ss {
		if i == maxProblems {
			out = append(out, fmt.Sprintf("and %d more", len(ss)-i))
			break
		}
		out = append(out, cut(s, maxDetail))
	}
	return out
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// savedVerify is the file the daemon keeps the last verification in.
type savedVerify struct {
	// Format is 1; another value is a file this build cannot read.
	Format int `json:"format"`
	VerifyRun
}

// MarshalVerifyRun encodes a run for keeping (see LoadVerifyRun).
func MarshalVerifyRun(v *VerifyRun) ([]byte, error) {
	b, err := json.MarshalIndent(savedVerify{Format: 1, VerifyRun: *v}, "", " ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// LoadVerifyRun decodes a kept run, refusing more than MaxSavedVerify
// bytes and anything that is not one.
func LoadVerifyRun(r io.Reader) (*VerifyRun, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSavedVerify+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSavedVerify {
		return nil, fmt.Errorf("larger than %d MiB, more than a kept verification can be", MaxSavedVerify>>20)
	}
	var s savedVerify
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	if s.Format != 1 {
		return nil, fmt.Errorf("format %d is not one this build reads (1)", s.Format)
	}
	if s.At.IsZero() {
		return nil, errors.New("no time (at)")
	}
	if res := s.Result; res != nil && len(res.Keys) != 8*len(res.Verdicts) {
		return nil, fmt.Errorf("%d verdicts but %d key digits (want 8 per verdict)", len(res.Verdicts), len(res.Keys))
	}
	return &s.VerifyRun, nil
}
