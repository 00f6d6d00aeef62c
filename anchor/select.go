package anchor

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/ssid/ssid-anchor/anchor/tree"
)

// ErrConfig marks a rule or path the selection cannot use (unknown
// placeholder, invalid pattern). It is found before anything moves; cmd
// maps it to the config exit code.
var ErrConfig = errors.New("invalid anchor configuration")

// matches reports whether the rule applies to an event name.
func (r Rule) matches(event string) bool {
	ev := strings.ToLower(event)
	for _, m := range r.Match {
		if m == "*" || (m != "" && strings.Contains(ev, strings.ToLower(m))) {
			return true
		}
	}
	return false
}

// placeholderRe finds {name} groups that hold no comma: doublestar reads
// {a,b} as alternatives, so a group without one can only be a placeholder
// (or a typo of one).
var placeholderRe = regexp.MustCompile(`\{[A-Za-z_][A-Za-z0-9_]*\}`)

// placeholders are the names a glob may be; each stands for configured
// paths. {dashboard_csv} stands for alternatives: the first that exists.
func placeholders(p tree.Paths) map[string][]string {
	return map[string][]string{
		"{events_log}":         {p.EventsLog},
		"{release_bundles}":    {p.ReleaseBundles},
		"{release_manifests}":  {p.ReleaseManifests},
		"{compliance_reports}": {p.ComplianceReports},
		"{dashboard_markdown}": {p.DashboardMarkdown},
		"{dashboard_csv}":      p.DashboardCSV,
	}
}

// placeholderNames lists the known placeholders for messages.
func placeholderNames() string {
	var names []string
	for k := range placeholders(tree.Paths{}) {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// checkGlob is the config-time check of one rule glob: a known placeholder
// standing alone, or a valid doublestar pattern relative to the root.
func checkGlob(g string) error {
	if _, ok := placeholders(tree.Paths{})[g]; ok {
		return nil
	}
	if m := placeholderRe.FindString(g); m != "" {
		if _, ok := placeholders(tree.Paths{})[m]; ok {
			return fmt.Errorf("placeholder %s must be the whole glob, got %q", m, g)
		}
		return fmt.Errorf("unknown placeholder %s in %q (known: %s; for alternatives write {a,b})", m, g, placeholderNames())
	}
	if err := tree.CheckRelative(g); err != nil {
		return err
	}
	if !doublestar.ValidatePattern(g) {
		return fmt.Errorf("invalid pattern %q (check [ ], { } and \\ escapes)", g)
	}
	return nil
}

// Unmatched is a rule glob that selected nothing for an event: the event
// is processed, but the operator should know (a typo, a file not built yet).
type Unmatched struct {
	Event       string `json:"event"`
	Line        int    `json:"line"`
	ProofAnchor string `json:"event_proof_anchor"`
	Rule        int    `json:"rule"`
	Glob        string `json:"glob"`
}

// Selector picks the files events call for. All patterns of a run are
// answered from one kernel-confined walk of the tree (done when the first
// pattern needs it, pruned to the directories some pattern can reach);
// literal paths are looked up directly. The tool's own outputs (the anchor
// manifest, the telemetry state, and their temp files) are never selected:
// the manifest is chained by CID already, and anchoring it would change it.
type Selector struct {
	root  tree.Root
	paths tree.Paths
	rules []selRule
	own   map[string]bool // root-relative paths of the tool's outputs

	walked  bool
	files   []string            // every regular file the walk found, sorted
	escapes []string            // symlinks the walk found leading outside the root
	cache   map[string][]string // pattern -> matches
}

type selRule struct {
	Rule
	index int
	alts  [][]string // per glob: the patterns it stands for, first match wins for several
}

// NewSelector checks every rule glob and configured path pattern; an
// unknown placeholder or an invalid pattern is an ErrConfig naming the key.
func NewSelector(root tree.Root, p tree.Paths, rules []Rule) (*Selector, error) {
	s := &Selector{root: root, paths: p, cache: map[string][]string{}, own: map[string]bool{}}
	for _, o := range []string{p.Manifest, p.TelemetryState} {
		if o != "" {
			s.own[path.Clean(o)] = true
		}
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("%w: anchor.rules: must list at least one rule (an empty list would use up every event with nothing anchored; remove the key to get the defaults)", ErrConfig)
	}
	ph := placeholders(p)
	for i, r := range rules {
		sr := selRule{Rule: r, index: i}
		for j, g := range r.Globs {
			if err := checkGlob(g); err != nil {
				return nil, fmt.Errorf("%w: anchor.rules[%d].globs[%d]: %w", ErrConfig, i, j, err)
			}
			pats, ok := ph[g]
			if !ok {
				pats = []string{g}
			}
			for _, pat := range pats {
				if err := tree.CheckRelative(pat); err != nil {
					return nil, fmt.Errorf("%w: anchor.rules[%d].globs[%d] (%s): %w", ErrConfig, i, j, g, err)
				}
				if !doublestar.ValidatePattern(pat) {
					return nil, fmt.Errorf("%w: anchor.rules[%d].globs[%d] (%s): invalid pattern %q", ErrConfig, i, j, g, pat)
				}
			}
			sr.alts = append(sr.alts, pats)
		}
		s.rules = append(s.rules, sr)
	}
	return s, nil
}

// isOwn reports whether rel is one of the tool's outputs or a temp file of
// one.
func (s *Selector) isOwn(rel string) bool {
	if s.own[rel] {
		return true
	}
	dir, base := path.Split(rel)
	for o := range s.own {
		od, ob := path.Split(o)
		if od == dir && tree.IsTemp(base, ob) {
			return true
		}
	}
	return false
}

// match returns the files one pattern selects, sorted.
func (s *Selector) match(pat string) ([]string, error) {
	pat = path.Clean(pat)
	if m, ok := s.cache[pat]; ok {
		return m, nil
	}
	var out []string
	if !hasMeta(pat) {
		st, err := s.root.Stat(pat)
		switch {
		case err == nil && st.Mode().IsRegular() && !s.isOwn(pat):
			out = []string{pat}
		case err == nil && st.Mode()&specialFile != 0 && !s.isOwn(pat):
			// Selected so the run refuses it by name (only regular files
			// are read), as the walk does for a glob; "matched no file"
			// would hide it and let the run pass.
			out = []string{pat}
		case errors.Is(err, tree.ErrOutsideRoot):
			return nil, err
		}
	} else {
		if err := s.walk(); err != nil {
			return nil, err
		}
		base, _ := doublestar.SplitPattern(pat)
		deep := strings.Contains(pat, "**")
		for _, e := range s.escapes {
			if doublestar.MatchUnvalidated(pat, e) || base == e || strings.HasPrefix(base, e+"/") ||
				(deep && (base == "." || strings.HasPrefix(e, base+"/"))) {
				return nil, fmt.Errorf("%w: %s is a symlink that leads outside %s", tree.ErrOutsideRoot, e, s.root.Dir())
			}
		}
		// Every match starts with the pattern's text before its first
		// special character and ends with its text after the last one:
		// checking those first spares doublestar most files (20,000 files
		// and eight `tree/**/*.ext` globs were 160,000 matches a run).
		pre, suf := literalEnds(pat)
		for _, f := range s.files {
			if len(f) >= len(pre)+len(suf) && strings.HasPrefix(f, pre) && strings.HasSuffix(f, suf) && doublestar.MatchUnvalidated(pat, f) {
				out = append(out, f)
			}
		}
	}
	s.cache[pat] = out
	return out, nil
}

// specialFile are the kinds of file a selection names so that the run
// refuses them (SPEC 4.1: FIFOs, devices and sockets are refused without
// blocking).
const specialFile = fs.ModeNamedPipe | fs.ModeSocket | fs.ModeDevice | fs.ModeCharDevice

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[{\`) }

// literalEnds returns the text of pattern before its first special
// character and after its last one (what every path it matches starts and
// ends with); a pattern without one is all prefix.
func literalEnds(pat string) (prefix, suffix string) {
	const meta = `*?[]{},\`
	i := strings.IndexAny(pat, meta)
	if i < 0 {
		return pat, ""
	}
	j := strings.LastIndexAny(pat, meta)
	suffix = pat[j+1:]
	if strings.HasSuffix(pat[:j+1], "**") {
		// `**/` matches no directory at all: its slash may be absent.
		suffix = strings.TrimPrefix(suffix, "/")
	}
	prefix = pat[:i]
	if strings.HasPrefix(pat[i:], "**") {
		// `/**` matches the directory itself too: its slash may be absent.
		prefix = strings.TrimSuffix(prefix, "/")
	}
	return prefix, suffix
}

// walk lists the tree once, through the root (os.Root.FS: every directory
// read and stat is confined by the kernel). Directories no pattern can
// reach are not entered; symlinks are followed only to regular files
// inside the root, symlinked directories are not descended (loops).
// A symlink that leads outside is remembered: a pattern that reaches it
// refuses the run with the path named, instead of the file vanishing from
// the selection.
func (s *Selector) walk() error {
	if s.walked {
		return nil
	}
	var bases []string
	for _, r := range s.rules {
		for _, alts := range r.alts {
			for _, p := range alts {
				if hasMeta(p) {
					b, _ := doublestar.SplitPattern(path.Clean(p))
					bases = append(bases, b)
				}
			}
		}
	}
	reach := func(dir string) bool {
		for _, b := range bases {
			if b == "." || dir == "." || dir == b || strings.HasPrefix(dir, b+"/") || strings.HasPrefix(b, dir+"/") {
				return true
			}
		}
		return false
	}
	underGit := func(dir string) bool {
		for _, b := range bases {
			if b == ".git" || strings.HasPrefix(b, ".git/") {
				return true
			}
		}
		return false
	}
	err := fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading %s in the tree: %w", p, err)
		}
		if d.IsDir() {
			if p != "." && (!reach(p) || (d.Name() == ".git" && !underGit(p))) {
				return fs.SkipDir
			}
			return nil
		}
		if s.isOwn(p) {
			return nil
		}
		switch {
		case d.Type().IsRegular():
			s.files = append(s.files, p)
		case d.Type()&fs.ModeSymlink != 0:
			st, err := s.root.Stat(p)
			if errors.Is(err, tree.ErrOutsideRoot) {
				s.escapes = append(s.escapes, p)
			} else if err == nil && st.Mode().IsRegular() {
				s.files = append(s.files, p)
			}
		case d.Type()&specialFile != 0:
			// Kept so the run refuses it by name rather than skip it.
			s.files = append(s.files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walking %s: %w", s.root.Dir(), err)
	}
	sort.Strings(s.files)
	s.walked = true
	return nil
}

// Selects reports whether some rule's glob matches the root-relative path
// rel, whatever the event: a file no rule selects is never anchored again
// (verify says so when such a file changed). The tool's own outputs are
// never selected.
func (s *Selector) Selects(rel string) bool {
	rel = path.Clean(rel)
	if s.isOwn(rel) {
		return false
	}
	for _, r := range s.rules {
		for _, alts := range r.alts {
			for _, pat := range alts {
				if doublestar.MatchUnvalidated(path.Clean(pat), rel) {
					return true
				}
			}
		}
	}
	return false
}

// Select returns the root-relative files an event calls for, in rule order
// without duplicates, and the globs that matched nothing for it.
func (s *Selector) Select(e tree.Event) ([]string, []Unmatched, error) {
	var out []string
	var none []Unmatched
	seen := map[string]bool{}
	for _, r := range s.rules {
		if !r.matches(e.Name()) {
			continue
		}
		var files []string
		for gi, alts := range r.alts {
			var got []string
			for _, pat := range alts {
				m, err := s.match(pat)
				if err != nil {
					return nil, nil, fmt.Errorf("anchor.rules[%d] (%q) for event %q at line %d: %w", r.index, pat, e.Name(), e.Line, err)
				}
				if len(m) > 0 {
					got = m
					break
				}
			}
			if len(got) == 0 {
				none = append(none, Unmatched{Event: e.Name(), Line: e.Line, ProofAnchor: e.ProofAnchor, Rule: r.index, Glob: r.Globs[gi]})
			}
			files = append(files, got...)
		}
		if r.Versioned {
			files = narrow(files, eventTags(e))
		}
		for _, f := range files {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out, none, nil
}

var versionQuarterRe = regexp.MustCompile(`Q([1-4])-(\d{4})`)

// eventTags are the strings a versioned rule looks for in file names: the
// event's quarter ("2026-Q1"), its version, and the quarter hidden in a
// release version like "v4.2.0-Q1-2026".
func eventTags(e tree.Event) []string {
	var tags []string
	if q := e.Field("quarter"); q != "" {
		tags = append(tags, q)
	}
	if v := e.Field("version"); v != "" {
		tags = append(tags, v)
		if m := versionQuarterRe.FindStringSubmatch(v); m != nil {
			tags = append(tags, m[2]+"-Q"+m[1])
		}
	}
	return tags
}

// narrow keeps the files whose name contains one of tags; when the event
// names nothing or no file carries its tag, all files are kept (the seed's
// behaviour), so a release event never anchors less than before.
func narrow(files, tags []string) []string {
	if len(tags) == 0 {
		return files
	}
	var keep []string
	for _, f := range files {
		base := path.Base(f)
		if slices.ContainsFunc(tags, func(t string) bool { return strings.Contains(base, t) }) {
			keep = append(keep, f)
		}
	}
	if len(keep) == 0 {
		return files
	}
	return keep
}
