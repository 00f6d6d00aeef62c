package release

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// EventName is the registry event a release appends.
const EventName = "governance_release_published"

// Options configure one build.
type Options struct {
	Root    tree.Root
	Paths   tree.Paths
	Quarter Quarter
	// Blueprint is the blueprint version, e.g. "v4.3"; the release version
	// is "<Blueprint>-QN-YYYY".
	Blueprint string
	// SourceDate, when set (SOURCE_DATE_EPOCH), is every entry's
	// timestamp; otherwise the quarter's last second.
	SourceDate *time.Time
	Now        func() time.Time
	Log        *slog.Logger
	// GeneratorVersion is the version of the program that builds the
	// release (ssid-anchor's, as `ssid-anchor version` prints it): the
	// manifest's metadata.generator_version, so a release host can pin the
	// build that made a bundle. "" leaves metadata out.
	GeneratorVersion string
}

// Input is one file of the bundle (SPEC 2.7, in order).
type Input struct {
	Entry    string // name inside the zip
	Path     string // root-relative source
	Required bool
}

// Inputs lists the bundle's files for a quarter, in SPEC 2.7 order. The
// report, dashboard and log follow the configured paths.
func Inputs(p tree.Paths, q Quarter) []Input {
	manDir := path.Dir(p.ReleaseManifests)
	return []Input{
		{"COMPLIANCE_REPORT.md", strings.Replace(p.ComplianceReports, "*", q.String(), 1), true},
		{"SSID_Governance_Dashboard.md", p.DashboardMarkdown, true},
		{"registry_events.log", p.EventsLog, true},
		{"integrity_checksums.json", manDir + "/integrity_checksums.json", false},
		{"dashboard_manifest.json", manDir + "/dashboard_manifest.json", true},
		{"branch_protection_rules.yaml", "07_governance_legal/branch_protection_rules.yaml", true},
		{"OPERATIONS_GUIDE.md", "05_documentation/OPERATIONS_GUIDE.md", true},
		{"promotion_rules.yaml", "24_meta_orchestration/promotion_rules.yaml", true},
		{"README.md", "README.md", true},
	}
}

// Layout is where a quarter's release files go (root-relative).
type Layout struct {
	Bundle, Manifest, EventFile string
}

// LayoutFor places a quarter's bundle, manifest and event file.
func LayoutFor(p tree.Paths, q Quarter) Layout {
	return Layout{
		Bundle:    path.Dir(p.ReleaseBundles) + "/SSID_Quarterly_Release_" + q.String() + ".zip",
		Manifest:  strings.Replace(p.ReleaseManifests, "*", q.String(), 1),
		EventFile: strings.TrimSuffix(p.ReleaseEvents, "/") + "/release_" + q.String() + ".json",
	}
}

// Version is the release version: "v4.3-Q1-2026" for blueprint v4.3.
func Version(blueprint string, q Quarter) string {
	return "v" + strings.TrimPrefix(blueprint, "v") + fmt.Sprintf("-Q%d-%04d", q.N, q.Year)
}

// MissingError names the required inputs that are not there.
type MissingError struct {
	Quarter Quarter
	Missing []Input
}

func (e *MissingError) Error() string {
	var names []string
	for _, m := range e.Missing {
		names = append(names, fmt.Sprintf("%s (from %s)", m.Entry, m.Path))
	}
	return fmt.Sprintf("release bundle %s: required file(s) missing: %s; create them, or bundle another quarter with --quarter; nothing was written",
		e.Quarter, strings.Join(names, ", "))
}

// Result says what a build did.
type Result struct {
	Quarter         string   `json:"quarter"`
	Version         string   `json:"version"`
	Bundle          string   `json:"bundle"`
	Manifest        string   `json:"manifest"`
	EventFile       string   `json:"event_file"`
	Hash            string   `json:"hash"`
	SizeBytes       int64    `json:"bundle_size_bytes"`
	Files           []string `json:"files_included"`
	ComplianceScore string   `json:"compliance_score"`
	GitCommit       string   `json:"git_commit"`
	Root24Lock      string   `json:"root_24_lock"`
	EntryTime       string   `json:"entry_time"`
	// EventProofAnchor is the proof anchor of the release event in the log.
	EventProofAnchor string `json:"event_proof_anchor"`
	// Written lists the files this build wrote; empty when nothing changed.
	Written       []string `json:"written"`
	EventAppended bool     `json:"event_appended"`
	// Replaced is the previous bundle's hash when changed inputs produced a
	// new bundle for a quarter already released.
	Replaced string   `json:"replaced_hash,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Manifest is the release manifest, keys in SPEC 2.7 order.
type Manifest struct {
	Artifact         string   `json:"artifact"`
	Version          string   `json:"version"`
	Quarter          string   `json:"quarter"`
	Blueprint        string   `json:"blueprint"`
	Model            string   `json:"model"`
	ComplianceScore  string   `json:"compliance_score"`
	Hash             string   `json:"hash"`
	CreatedAt        string   `json:"created_at"`
	GitCommit        string   `json:"git_commit"`
	ProofAnchor      string   `json:"proof_anchor"`
	FilesIncluded    []string `json:"files_included"`
	FileCount        int      `json:"file_count"`
	BundleSizeBytes  int64    `json:"bundle_size_bytes"`
	Status           string   `json:"status"`
	Repository       string   `json:"repository"`
	Root24Lock       string   `json:"root_24_lock"`
	GovernanceSystem string   `json:"governance_system"`
	// ExternalAnchors holds "ipfs" once anchored; other anchors a user
	// added (the template's "polygon") are kept.
	ExternalAnchors map[string]json.RawMessage `json:"external_anchors,omitempty"`
	// Metadata is the template's last key: which program wrote the
	// manifest. Last, so the keys SPEC 2.7 orders keep their order.
	Metadata *Metadata `json:"metadata,omitempty"`
}

// Metadata is the release manifest's metadata, with the template's key
// names (generator, generator_version).
type Metadata struct {
	Generator        string `json:"generator"`
	GeneratorVersion string `json:"generator_version"`
}

// IPFSAnchor is external_anchors.ipfs.
type IPFSAnchor struct {
	CID        string `json:"cid"`
	GatewayURL string `json:"gateway_url"`
	Pinned     bool   `json:"pinned"`
	PinnedAt   string `json:"pinned_at"`
}

// EventFile is registry/events/release_YYYY-QN.json (the template's shape).
type EventFile struct {
	Timestamp       string `json:"timestamp"`
	Event           string `json:"event"`
	Version         string `json:"version"`
	Quarter         string `json:"quarter"`
	CommitHash      string `json:"commit_hash"`
	Blueprint       string `json:"blueprint"`
	BundleHash      string `json:"bundle_hash"`
	ComplianceScore string `json:"compliance_score"`
	Root24Lock      string `json:"root_24_lock"`
	EmittedBy       string `json:"emitted_by"`
	BundleDetails   struct {
		Artifact  string `json:"artifact"`
		SizeBytes int64  `json:"size_bytes"`
		FileCount int    `json:"file_count"`
		Status    string `json:"status"`
	} `json:"bundle_details"`
	ProofAnchors struct {
		BundleHash       string `json:"bundle_hash"`
		EventProofAnchor string `json:"event_proof_anchor"`
		IPFSCID          string `json:"ipfs_cid,omitempty"`
	} `json:"proof_anchors"`
}

const (
	statusReady = "READY_FOR_PUBLIC_RELEASE"
	model       = "6-Layer Depth Model"
	emittedBy   = "ssid-anchor"
)

var scoreRe = regexp.MustCompile(`\*\*Overall Compliance Score:\*\*\s*([0-9]+(?:\.[0-9]+)?\s*/\s*[0-9]+)`)

// priorEvent is a release event of the quarter already in the log.
type priorEvent struct {
	line        int
	bundleHash  string
	proofAnchor string
	timestamp   string
}

// Build makes the quarter's bundle, manifest and release event. A missing
// required input is a *MissingError and nothing is written. Re-running with
// the same inputs writes nothing; with changed inputs, the new bundle
// replaces the old one, the manifest is rewritten, and a new release event
// (with the new bundle_hash) is appended: the log keeps both.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	q := o.Quarter
	lay := LayoutFor(o.Paths, q)
	res := &Result{Quarter: q.String(), Version: Version(o.Blueprint, q), Bundle: lay.Bundle, Manifest: lay.Manifest, EventFile: lay.EventFile}

	// Every input is checked before anything is created.
	inputs := Inputs(o.Paths, q)
	var missing []Input
	var present []Input
	for _, in := range inputs {
		// Root.Open refuses a FIFO or device without blocking on it
		// (O_NONBLOCK, then fstat): anything but a regular file is an error.
		f, err := o.Root.Open(in.Path)
		if err == nil {
			st, serr := f.Stat()
			f.Close()
			if serr != nil {
				return nil, fmt.Errorf("reading %s: %w", in.Path, serr)
			}
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("release input %s is not a regular file", in.Path)
			}
			present = append(present, in)
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("opening release input %s: %w", in.Path, err)
		}
		if in.Required {
			missing = append(missing, in)
		} else {
			res.Warnings = append(res.Warnings, fmt.Sprintf("optional %s not found at %s; left out", in.Entry, in.Path))
		}
	}
	if len(missing) > 0 {
		return nil, &MissingError{Quarter: q, Missing: missing}
	}

	unlock, err := o.Root.LockDir(path.Dir(lay.Bundle))
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path.Dir(lay.Bundle), err)
	}
	defer unlock()

	prior, logCut, err := scanReleases(o.Root, o.Paths.EventsLog, q)
	if err != nil {
		return nil, err
	}

	report, err := readSmall(o.Root, inputs[0].Path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", inputs[0].Path, err)
	}
	res.ComplianceScore = "unknown"
	if m := scoreRe.FindStringSubmatch(report); m != nil {
		res.ComplianceScore = strings.Join(strings.Fields(m[1]), "")
	} else {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s has no \"**Overall Compliance Score:** N/N\" line; compliance_score is \"unknown\"", inputs[0].Path))
	}

	entryTime := q.End()
	if o.SourceDate != nil {
		entryTime = o.SourceDate.UTC()
	}
	res.EntryTime = entryTime.Format(time.RFC3339)
	var entries []zipEntry
	for _, in := range present {
		in := in
		open := func() (io.ReadCloser, error) { return o.Root.Open(in.Path) }
		if in.Path == o.Paths.EventsLog && logCut >= 0 {
			open = func() (io.ReadCloser, error) {
				f, err := o.Root.Open(in.Path)
				if err != nil {
					return nil, err
				}
				return struct {
					io.Reader
					io.Closer
				}{io.LimitReader(f, logCut), f}, nil
			}
		}
		entries = append(entries, zipEntry{name: in.Entry, open: open})
		res.Files = append(res.Files, in.Entry)
	}
	// The zip goes straight to a temp file next to the bundle, hashed as it
	// is written; it replaces the bundle only if its hash differs (step 1).
	bundle, err := o.Root.CreateAtomic(lay.Bundle, 0o644)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", lay.Bundle, err)
	}
	defer bundle.Abort()
	spill, err := o.Root.CreateAtomic(lay.Bundle+".deflate", 0o600)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", lay.Bundle, err)
	}
	defer spill.Abort()
	h := sha256.New()
	zout := &countWriter{w: io.MultiWriter(bundle, h)}
	bw := bufio.NewWriterSize(zout, 1<<20)
	err = writeZip(ctx, bw, spill.File, entries, entryTime)
	if err == nil {
		err = bw.Flush()
	}
	spill.Abort()
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", lay.Bundle, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Hash = hex.EncodeToString(h.Sum(nil))
	res.SizeBytes = zout.n
	res.GitCommit = gitCommit(o.Root)
	st := tree.CheckRoot24(o.Root)
	lock, lockLabel := st.Status(), "FAIL"
	switch lock {
	case tree.Root24Active:
		lockLabel = "PASS"
	case tree.Root24Unknown:
		lockLabel = "UNKNOWN"
		res.Warnings = append(res.Warnings, "Root-24-LOCK could not be measured: "+st.Reason)
	default:
		res.Warnings = append(res.Warnings, "Root-24-LOCK is violated: "+strings.Join(st.Problems, "; "))
	}
	res.Root24Lock = lockLabel

	// 1. The bundle.
	old, err := bundleSHA256(ctx, o.Root, lay.Bundle)
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	switch {
	case err == nil && old == res.Hash:
	case err == nil || errors.Is(err, fs.ErrNotExist):
		if err == nil {
			res.Replaced = old
		}
		if err := bundle.Commit(); err != nil {
			return nil, fmt.Errorf("writing %s: %w", lay.Bundle, err)
		}
		res.Written = append(res.Written, lay.Bundle)
	default:
		return nil, fmt.Errorf("reading the existing %s: %w", lay.Bundle, err)
	}

	// 2. The release manifest, unless it already describes this bundle.
	cur, err := LoadManifest(o.Root, lay.Manifest)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if cur == nil || cur.Hash != res.Hash {
		if cur != nil && res.Replaced == "" {
			res.Replaced = cur.Hash
		}
		m := Manifest{
			Artifact: lay.Bundle, Version: res.Version, Quarter: res.Quarter, Blueprint: o.Blueprint,
			Model: model, ComplianceScore: res.ComplianceScore, Hash: res.Hash,
			CreatedAt: o.Now().UTC().Format("2006-01-02T15:04:05Z"), GitCommit: res.GitCommit,
			ProofAnchor: res.Hash, FilesIncluded: res.Files, FileCount: len(res.Files),
			BundleSizeBytes: res.SizeBytes, Status: statusReady, Repository: gitRepository(o.Root),
			Root24Lock: lockLabel, GovernanceSystem: "ACTIVE",
		}
		if o.GeneratorVersion != "" {
			m.Metadata = &Metadata{Generator: emittedBy, GeneratorVersion: o.GeneratorVersion}
		}
		if err := writeJSONAtomic(o.Root, lay.Manifest, m); err != nil {
			return nil, fmt.Errorf("writing %s: %w", lay.Manifest, err)
		}
		res.Written = append(res.Written, lay.Manifest)
	} else {
		res.GitCommit, res.ComplianceScore, res.Root24Lock = cur.GitCommit, cur.ComplianceScore, cur.Root24Lock
	}

	// 3. The release event, unless the log already has it for this bundle.
	var ev *priorEvent
	for i := range prior {
		if prior[i].bundleHash == res.Hash {
			ev = &prior[i]
		}
	}
	if ev == nil {
		ts := o.Now().UTC().Format("2006-01-02T15:04:05Z")
		pa, err := o.Root.AppendEvent(o.Paths.EventsLog, tree.NewEvent{
			Timestamp: ts, Event: EventName, Version: res.Version, CommitHash: res.GitCommit,
			Blueprint: o.Blueprint, Root24Lock: lock, ComplianceScore: res.ComplianceScore, EmittedBy: emittedBy,
			Extra: [][2]string{{"quarter", res.Quarter}, {"bundle_hash", res.Hash}},
		})
		if err != nil {
			return nil, fmt.Errorf("appending %s to %s: %w", EventName, o.Paths.EventsLog, err)
		}
		ev = &priorEvent{bundleHash: res.Hash, proofAnchor: pa, timestamp: ts}
		res.EventAppended = true
		res.Written = append(res.Written, o.Paths.EventsLog)
	}
	res.EventProofAnchor = ev.proofAnchor

	// 4. The event file.
	var curEv EventFile
	if b, err := readSmall(o.Root, lay.EventFile); err == nil && json.Unmarshal([]byte(b), &curEv) == nil && curEv.BundleHash == res.Hash {
		return res, nil
	}
	var ef EventFile
	ef.Timestamp, ef.Event, ef.Version, ef.Quarter = ev.timestamp, EventName, res.Version, res.Quarter
	ef.CommitHash, ef.Blueprint, ef.BundleHash = res.GitCommit, o.Blueprint, res.Hash
	ef.ComplianceScore, ef.Root24Lock, ef.EmittedBy = res.ComplianceScore, lock, emittedBy
	ef.BundleDetails.Artifact, ef.BundleDetails.SizeBytes = lay.Bundle, res.SizeBytes
	ef.BundleDetails.FileCount, ef.BundleDetails.Status = len(res.Files), statusReady
	ef.ProofAnchors.BundleHash, ef.ProofAnchors.EventProofAnchor = res.Hash, ev.proofAnchor
	if err := writeJSONAtomic(o.Root, lay.EventFile, ef); err != nil {
		return nil, fmt.Errorf("writing %s: %w", lay.EventFile, err)
	}
	res.Written = append(res.Written, lay.EventFile)
	return res, nil
}

// scanReleases finds the quarter's release events already in the log and
// the byte offset where the first of them starts (-1: none), which is where
// the bundle's copy of the log ends.
func scanReleases(root tree.Root, logRel string, q Quarter) ([]priorEvent, int64, error) {
	f, err := root.Open(logRel)
	if err != nil {
		return nil, -1, fmt.Errorf("opening %s: %w", logRel, err)
	}
	defer f.Close()
	var prior []priorEvent
	if _, err := tree.ScanEvents(f, func(e tree.Event) error {
		if e.Name() == EventName && e.Field("quarter") == q.String() {
			prior = append(prior, priorEvent{line: e.Line, bundleHash: e.Field("bundle_hash"), proofAnchor: e.ProofAnchor, timestamp: e.Field("timestamp")})
		}
		return nil
	}); err != nil {
		return nil, -1, fmt.Errorf("reading %s: %w", logRel, err)
	}
	if len(prior) == 0 {
		return nil, -1, nil
	}
	// The offset of the first event's line, found by counting lines.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, -1, err
	}
	br := bufio.NewReader(f)
	var off int64
	for line := 1; line < prior[0].line; line++ {
		b, err := br.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			off += int64(len(b))
			b, err = br.ReadSlice('\n')
		}
		off += int64(len(b))
		if err != nil {
			return nil, -1, fmt.Errorf("reading %s: %w", logRel, err)
		}
	}
	return prior, off, nil
}

// maxManifestBytes bounds a release manifest read into memory: a huge file
// in its place must not take all memory.
const maxManifestBytes = 64 << 20

// LoadManifest reads a release manifest through the root.
func LoadManifest(root tree.Root, rel string) (*Manifest, error) {
	f, err := root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading release manifest %s: %w", rel, err)
	}
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("release manifest %s is larger than %d MiB, more than a release manifest can be (delete it to rebuild)", rel, maxManifestBytes>>20)
	}
	var m Manifest
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&m); err != nil {
		return nil, fmt.Errorf("release manifest %s: %w (fix the JSON or delete it to rebuild)", rel, err)
	}
	return &m, nil
}

// RecordIPFS writes external_anchors.ipfs into the quarter's release
// manifest (and the CID into the event file's proof_anchors). A manifest
// that already holds the same CID, gateway URL and pinned state is not
// rewritten, so pinned_at stays the first time.
func RecordIPFS(root tree.Root, p tree.Paths, q Quarter, a IPFSAnchor) (bool, error) {
	lay := LayoutFor(p, q)
	m, err := LoadManifest(root, lay.Manifest)
	if err != nil {
		return false, err
	}
	raw, _ := json.Marshal(a)
	var old IPFSAnchor
	if b, ok := m.ExternalAnchors["ipfs"]; ok && json.Unmarshal(b, &old) == nil &&
		old.CID == a.CID && old.GatewayURL == a.GatewayURL && old.Pinned == a.Pinned {
		// Already recorded: keep pinned_at of the first time (a rerun
		// must not change an anchored file).
		return false, nil
	}
	if m.ExternalAnchors == nil {
		m.ExternalAnchors = map[string]json.RawMessage{}
	}
	m.ExternalAnchors["ipfs"] = raw
	if err := writeJSONAtomic(root, lay.Manifest, m); err != nil {
		return false, fmt.Errorf("writing %s: %w", lay.Manifest, err)
	}
	var ef EventFile
	if b, err := readSmall(root, lay.EventFile); err == nil && json.Unmarshal([]byte(b), &ef) == nil && ef.BundleHash == m.Hash && ef.ProofAnchors.IPFSCID != a.CID {
		ef.ProofAnchors.IPFSCID = a.CID
		if err := writeJSONAtomic(root, lay.EventFile, ef); err != nil {
			return true, fmt.Errorf("writing %s: %w", lay.EventFile, err)
		}
	}
	return true, nil
}

func writeJSONAtomic(root tree.Root, rel string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return root.WriteFileAtomic(rel, b.Bytes(), 0o644)
}

// bundleSHA256 is FileSHA256 of the bundle already at rel, stopping when
// ctx ends: a 10 GB bundle takes a while to read.
func bundleSHA256(ctx context.Context, root tree.Root, rel string) (string, error) {
	f, err := root.Open(rel)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FileSHA256 is the SHA-256 (hex) of a file in the tree, read through the
// confined root.
func FileSHA256(root tree.Root, rel string) (string, error) {
	f, err := root.Open(rel)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
