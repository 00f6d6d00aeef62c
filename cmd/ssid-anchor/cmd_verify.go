package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/node"
	"github.com/urfave/cli/v2"
)

type verifyOptions struct {
	Network      bool
	Gateways     []string
	Manifest     string
	CARs         []string
	AllowMissing bool
	Peers        []string
	Timeout      time.Duration
	// NoTree: only CARs and a manifest were carried in, no governance tree
	// (set when --car is given without --root).
	NoTree bool
	stray  []string
	// Trust are the peer IDs every manifest must be signed by (--trust).
	Trust []string
}

func verifyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "network", Usage: "also fetch every anchor from connected peers over bitswap and re-hash it"},
		&cli.StringSliceFlag{Name: "gateway", Usage: "also fetch every anchor from gateway `URL` (trustless CAR, checked block by block); repeatable"},
		&cli.StringFlag{Name: "manifest", TakesFile: true, Usage: "manifest `FILE` to verify (default: paths.manifest under --root)"},
		&cli.StringSliceFlag{Name: "car", TakesFile: true, Usage: "verify from CAR `FILE`s instead of the repo (no repo needed); repeatable"},
		&cli.BoolFlag{Name: "allow-missing", Usage: "a record whose file was removed passes on the IPFS side alone"},
		&cli.StringSliceFlag{Name: "peer", Usage: "with --network, connect to `MULTIADDR` (with /p2p/<id>) first; repeatable"},
		&cli.StringSliceFlag{Name: "trust", Usage: "require `PEERID`'s signature on the head and every manifest from the first signed one on (repeatable; default: anchor.trust)"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up on a peer or gateway request after this long without data"},
	}
}

// onlyWithVerify refuses verify's flags on `anchor` without --verify.
func onlyWithVerify(c *cli.Context) error {
	for _, f := range verifyFlags() {
		if name := f.Names()[0]; c.IsSet(name) {
			return usagef("--%s is a verify flag; use it with `anchor --verify` or `ssid-anchor verify`", name)
		}
	}
	return nil
}

func verifyOptionsFrom(c *cli.Context) verifyOptions {
	o := verifyOptions{
		Network:      c.Bool("network"),
		Gateways:     c.StringSlice("gateway"),
		Manifest:     c.String("manifest"),
		CARs:         c.StringSlice("car"),
		AllowMissing: c.Bool("allow-missing"),
		Peers:        c.StringSlice("peer"),
		Timeout:      c.Duration("timeout"),
		Trust:        c.StringSlice("trust"),
	}
	if len(o.CARs) > 0 {
		// spreadListFlags made every word of `--car out/*.car` a --car
		// value; a CAR after another flag (`--car a --timeout 5s b`) is
		// still one.
		o.CARs = append(o.CARs, c.Args().Slice()...)
	} else if c.Args().Len() > 0 {
		o.stray = c.Args().Slice()
	}
	o.NoTree = len(o.CARs) > 0 && !c.IsSet("root")
	return o
}

// listFlags are the flags, per command, that take several values after
// one flag: `--car out/*.car`, which the shell expands into one word per
// file.
var listFlags = map[string]map[string]bool{"verify": {"car": true}, "anchor": {"car": true}}

// spreadListFlags turns `verify --car a.car b.car --trust P` into `verify
// --car a.car --car b.car --trust P`. urfave/cli (Go's flag package) stops
// at the first plain word, so every flag after the CAR list was a CAR path
// ("open --trust: no such file") and a mistyped one was never refused; now
// they are parsed as flags (an unknown one is a usage error, exit 2), and
// every CAR is a --car value (made absolute when the command is sent to a
// daemon). args have the global flags first (hoistGlobalFlags); nothing
// after "--" is touched.
func spreadListFlags(args []string) []string {
	i := commandIndex(args)
	if i < 0 || listFlags[args[i]] == nil {
		return args
	}
	lists := listFlags[args[i]]
	out := append([]string(nil), args[:i+1]...)
	open := "" // the list flag whose values follow
	for j := i + 1; j < len(args); j++ {
		a := args[j]
		switch {
		case a == "--":
			return append(out, args[j:]...)
		case strings.HasPrefix(a, "-") && a != "-":
			open = ""
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			out = append(out, a)
			if lists[name] && !strings.HasPrefix(a, "---") {
				open = name
				if !hasValue && j+1 < len(args) {
					j++
					out = append(out, args[j])
				}
			}
		case open != "":
			out = append(out, "--"+open, a)
		default:
			out = append(out, a)
		}
	}
	return out
}

// commandIndex is the index of the command word in args whose global flags
// come first, or -1.
func commandIndex(args []string) int {
	for k := 1; k < len(args); k++ {
		a := args[k]
		if a == "--" {
			return -1
		}
		if !strings.HasPrefix(a, "-") {
			return k
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if takesValue := globalFlags[name]; takesValue && !hasValue {
			k++
		}
	}
	return -1
}

func newVerifyCommand(g *globalOptions) *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check every anchor: file, re-derived CID, blocks, pins, manifest chain",
		Description: `For each record of the manifest: the file at file_path hashes to file_hash;
re-chunking it with the record's CID profile gives ipfs_cid; every block of
that DAG is in the repo with the right bytes; the CID is pinned (directly,
recursively or through a pinned run root). A record whose file changed and
was anchored again is history: its old content is rebuilt from the blocks and
must hash to its file_hash. The manifest chain (previous_manifest_cid) is
followed back to the first manifest; each one must be stored, re-hash to its
CID and keep its predecessor's records.

Every manifest carries a signature by the node key of the repo that wrote it
(the "signature" key: peer ID, ed25519, over the RFC 8785 form of the rest).
verify checks each one and names the signer and since which manifest it has
signed. An invalid signature, or an unsigned manifest newer than a signed
one, fails; a change of signer is reported. Unsigned manifests older than the
first signed one (the SSID seed) pass as "unsigned, covered by <CID>": that
signed manifest's previous_manifest_cid chain fixes their bytes. --trust
PEERID (repeatable, or anchor.trust in the config) requires that peer's
signature on the head and on every manifest from the first signed one on;
another signer, or an unsigned chain, then fails.

The tree's manifest must be the chain head this repo committed, or a
descendant of it. Without a head to compare with (a repo that never anchored
nor imported a manifest, CAR files without a repo, or a head file that was
removed) the rollback check is off, and the last line and --json (rollback)
say so. The registry events log is append-only: a record of it passes when
its anchored bytes start today's log.

--network and --gateway fetch every anchor again from peers or gateways,
check each block against its CID, rebuild the file and compare its SHA-256.
--car verifies from CAR files (see export) with no repo and no network; when
--root is not given the files are not looked at and content is checked from
the CARs alone. Every word after --car up to the next flag is a CAR file
(--car out/*.car --trust PEERID).

Exit codes: 0 every record, the chain and its signatures passed, 1 something
failed (each failure is printed), 2 bad flag, 3 repo missing or locked, 130
interrupted.`,
		Flags:  verifyFlags(),
		Action: func(c *cli.Context) error { return runVerify(c.Context, verifyOptionsFrom(c), g) },
	}
}

// verifyResult is verify's --json document.
type verifyResult struct {
	*anchor.VerifyReport
	CARs []node.CARReport `json:"cars,omitempty"`
}

func runVerify(ctx context.Context, o verifyOptions, g *globalOptions) error {
	if len(o.stray) > 0 {
		return usagef("unexpected argument %q (CAR files go after --car)", o.stray[0])
	}
	// Results are printed as they are settled, in record order, so memory
	// does not grow with the number of records; the progress lines start
	// with the first (Begin).
	pr := &verifyPrinter{g: g}
	defer func() { pr.progress.Close() }()
	res, err := ops.Verify(ctx, g.opsEnv(), ops.VerifyOptions{
		Network: o.Network, Gateways: o.Gateways, Manifest: o.Manifest, CARs: o.CARs,
		AllowMissing: o.AllowMissing, Peers: o.Peers, Timeout: o.Timeout, NoTree: o.NoTree,
		Trust: o.Trust, Sink: pr,
		// GOGC is process-wide: inside the daemon, concurrent commands
		// would undo each other's setting and leave the daemon at 400,
		// so only a one-shot process changes it.
		TuneGC: !g.served,
	})
	if err != nil {
		return err
	}
	if err := pr.finish(verifyResult{VerifyReport: res.Report, CARs: res.CARs}); err != nil {
		return err
	}
	if msg := res.Failed(); msg != "" {
		return failure{msg}
	}
	return nil
}

// verifyPrinter is anchor.Verify's sink: it prints the header, each record
// as it comes, and (finish) the rest, producing exactly the document that
// printing the whole report at once would: the --json document is that
// encoding cut around its records array.
type verifyPrinter struct {
	g        *globalOptions
	n        int
	failed   int
	progress *progressLines // nil: none
	enc      *json.Encoder
	rec      bytes.Buffer
}

// recordsKey opens the records array in the indented document.
const recordsKey = "\n  \"records\": ["

func (p *verifyPrinter) Begin(rep *anchor.VerifyReport) error {
	p.progress = p.g.newProgress("records", "read")
	if !p.g.JSON {
		fmt.Fprintf(p.g.stdout, "verifying %s (cid %s) against %s\n", rep.Manifest, rep.ManifestCID, rep.Source)
		return nil
	}
	head, _, err := p.splitDoc(verifyResult{VerifyReport: rep})
	if err != nil {
		return err
	}
	p.enc = json.NewEncoder(&p.rec)
	p.enc.SetIndent("    ", "  ")
	p.enc.SetEscapeHTML(false)
	_, err = p.g.stdout.Write(head)
	return err
}

func (p *verifyPrinter) Record(r anchor.RecordResult) error {
	p.n++
	if !r.OK {
		p.failed++
	}
	p.progress.count(p.n, p.failed)
	if !p.g.JSON {
		printRecordHuman(p.g.stdout, r)
		return nil
	}
	p.rec.Reset()
	if p.n > 1 {
		p.rec.WriteByte(',')
	}
	p.rec.WriteString("\n    ")
	if err := p.enc.Encode(r); err != nil {
		return err
	}
	p.rec.Truncate(p.rec.Len() - 1) // Encode's newline
	_, err := p.g.stdout.Write(p.rec.Bytes())
	return err
}

// finish prints what follows the records.
func (p *verifyPrinter) finish(out verifyResult) error {
	if !p.g.JSON {
		printVerifyTail(p.g.stdout, out)
		return nil
	}
	_, tail, err := p.splitDoc(out)
	if err != nil {
		return err
	}
	if p.n > 0 {
		_, err = io.WriteString(p.g.stdout, "\n  ]"+string(tail))
	} else {
		_, err = io.WriteString(p.g.stdout, "]"+string(tail))
	}
	return err
}

// splitDoc encodes out as writeJSON would with no records and cuts the
// document around its (empty) records array: head ends with its "[",
// tail starts after its "]". JSON strings hold no raw newline, so the
// cut is the top-level key.
func (p *verifyPrinter) splitDoc(out verifyResult) (head, tail []byte, err error) {
	rep := *out.VerifyReport
	rep.Records = []anchor.RecordResult{}
	out.VerifyReport = &rep
	var b bytes.Buffer
	if err := writeJSON(&b, out); err != nil {
		return nil, nil, err
	}
	doc := b.Bytes()
	i := bytes.Index(doc, []byte(recordsKey+"]"))
	if i < 0 {
		return nil, nil, fmt.Errorf("encoding the verify report: no records key")
	}
	return doc[:i+len(recordsKey)], doc[i+len(recordsKey)+1:], nil
}

func printRecordHuman(w io.Writer, r anchor.RecordResult) {
	if r.OK {
		var parts []string
		note := ""
		for _, c := range r.Checks {
			if c.Status == anchor.StatusOK {
				parts = append(parts, c.Name)
			} else if c.Name == "file" {
				note = "; file " + c.Detail
			}
		}
		if r.Note != "" {
			note += "; " + r.Note
		}
		fmt.Fprintf(w, "ok      %s  %s  (%s%s)\n", r.IPFSCID, r.FilePath, strings.Join(parts, ", "), note)
		return
	}
	fmt.Fprintf(w, "FAILED  %s  %s\n", r.IPFSCID, r.FilePath)
	for _, c := range r.Failed() {
		fmt.Fprintf(w, "          %s: %s\n", c.Name, c.Detail)
	}
}

func printVerifyTail(w io.Writer, out verifyResult) {
	rep := out.VerifyReport
	if rep.Chain.OK {
		fmt.Fprintf(w, "chain   ok: %d manifest(s) back to the first\n", len(rep.Chain.Manifests))
	} else {
		for _, p := range rep.Chain.Problems {
			fmt.Fprintf(w, "chain   FAILED: %s\n", p)
		}
	}
	switch rb := rep.Rollback; rb.Status {
	case anchor.RollbackOK:
		fmt.Fprintf(w, "head    ok: %s\n", rb.Detail)
	case anchor.RollbackFailed:
	case anchor.RollbackHeadMissing:
		fmt.Fprintf(w, "WARNING head missing: %s\n", rb.Detail)
	default:
		fmt.Fprintf(w, "head    none: %s\n", rb.Detail)
	}
	printSignaturesHuman(w, rep)
	if !rep.ManifestStored {
		fmt.Fprintf(w, "note    the manifest file itself (cid %s) is not in %s: it changed after the last anchoring run\n", rep.ManifestCID, rep.Source)
	}
	for _, c := range out.CARs {
		if c.OK {
			fmt.Fprintf(w, "car     ok: %s (%d blocks, root %s)\n", c.Path, c.Blocks, strings.Join(c.Roots, ", "))
			continue
		}
		fmt.Fprintf(w, "car     FAILED: %s\n", c.Path)
		for _, p := range c.Problems {
			fmt.Fprintf(w, "          %s\n", p)
		}
	}
	verdict := "OK"
	if !rep.OK {
		verdict = "FAILED"
	}
	for _, c := range out.CARs {
		if !c.OK {
			verdict = "FAILED"
		}
	}
	fmt.Fprintf(w, "%d of %d records passed; chain %s; %s%s\n", rep.Passed, rep.Total(), map[bool]string{true: "intact", false: "broken"}[rep.Chain.OK], verdict, rollbackVerdict(rep.Rollback))
}

// rollbackVerdict is what the verdict line says when the manifest could
// not be checked against a chain head: that check is then off, and a
// passing verify must not look like one that made it.
func rollbackVerdict(rb anchor.RollbackCheck) string {
	switch rb.Status {
	case anchor.RollbackHeadMissing:
		return "; WARNING: rollback NOT checked, the chain head this repo recorded is gone"
	case anchor.RollbackNoHead:
		return "; rollback not checked: this repo has recorded no chain head"
	case anchor.RollbackNoRepo:
		return "; rollback not checked: no repo, so no chain head"
	}
	return ""
}
