package console

import (
	"fmt"
	"html/template"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ssid/ssid-anchor/anchor"
)

type viewRequest struct {
	Filter, File string
	Page         int
	Host         string
}

// view is what the template renders; everything is computed here so the
// template stays simple and the page work is bounded by the page size.
type view struct {
	Now      time.Time
	Host     string
	Node     Node
	Uptime   string
	Tiles    []tile
	NotFound bool

	ManifestPath    string
	ManifestProblem string
	AnyRecords      bool
	Filter          string
	File            string
	Rows            []row
	Total           int // rows matching the filter (or the file's versions)
	From, To        int
	Page, Pages     int
	PrevURL         string
	NextURL         string

	Chain     []ManifestLink // the newest chainShown links
	ChainMore []ManifestLink // the rest, folded
	ChainNote string

	Verify        *VerifyRun
	VerifyFailed  []RecordFailure
	VerifyMore    int // failures not listed
	VerifyProblem string

	Tel        Telemetry
	Current    *Point
	ScoreClass string
	Chart      template.HTML

	Jobs           []Job
	RemoteServices []string
	// RemoteCounts are the remote pin requests per service and status;
	// RemotePins lists the ones that need a look first (failed, then
	// unfinished, oldest first, then the newest pinned), at most
	// remoteShown; RemoteMore counts the rest.
	RemoteCounts []remoteCount
	RemotePins   []RemotePin
	RemoteTotal  int
	RemoteMore   int
}

type remoteCount struct {
	Service                         string
	Pinned, Pinning, Queued, Failed int
	Other                           int
}

// How much of a long list the page shows: the summary sections come
// before the anchors table and must stay short whatever the box holds.
const (
	chainShown    = 5
	remoteShown   = 10
	failuresShown = 20
)

type tile struct {
	Label, Value, Note, Class string
	Href                      string
}

type row struct {
	Path, Hash, CID, CIDURL string
	Event, EventVersion     string
	AnchoredAt              string
	Pinned                  bool
	Remote                  []anchor.RemotePin
	Verify                  string // ok, failed, "" (not verified)
	VerifyDetail            string
	VerifyNote              string // why there is no verdict
	HistoryURL              string
	Versions                int
	Latest                  bool
}

func buildView(s *Snapshot, rq viewRequest, o Options) *view {
	now := o.Now()
	v := &view{
		Now: now, Host: rq.Host, Node: s.Node,
		ManifestPath: s.ManifestPath, ManifestProblem: s.ManifestProblem,
		AnyRecords: len(s.Records) > 0, Filter: rq.Filter, File: rq.File,
		Chain: s.Chain, ChainNote: s.ChainNote, Verify: s.Verify, VerifyProblem: redact(s.VerifyProblem),
		Tel: s.Telemetry, Jobs: s.Jobs, RemoteServices: s.RemoteServices,
	}
	if len(v.Chain) > chainShown {
		v.Chain, v.ChainMore = s.Chain[:chainShown], s.Chain[chainShown:]
	}
	if !s.Node.Started.IsZero() {
		v.Uptime = humanDuration(now.Sub(s.Node.Started))
	}

	// Latest record per file and each file's number of versions, in one
	// pass from the end: anchoring only appends, so the first record of a
	// path met going backwards is its newest.
	versions := make(map[string]int, len(s.Records))
	var idx []int
	f := strings.ToLower(strings.TrimSpace(rq.Filter))
	for i := len(s.Records) - 1; i >= 0; i-- {
		p := s.Records[i].FilePath
		n := versions[p]
		versions[p] = n + 1
		switch {
		case rq.File != "":
			if p == rq.File {
				idx = append(idx, i)
			}
		case n == 0 && (f == "" || strings.Contains(strings.ToLower(p), f)):
			idx = append(idx, i)
		}
	}
	files := len(versions)
	if rq.File != "" {
		v.NotFound = len(idx) == 0
	} else {
		// Newest first: by anchored_at, then by record order. A manifest
		// written by anchoring is already in that order (checked in one
		// pass); only an edited one pays for the sort.
		newer := func(a, b int) int {
			if c := strings.Compare(s.Records[b].AnchoredAt, s.Records[a].AnchoredAt); c != 0 {
				return c
			}
			return b - a
		}
		if !slices.IsSortedFunc(idx, newer) {
			slices.SortFunc(idx, newer)
		}
	}
	v.Total = len(idx)
	v.Pages = max(1, (v.Total+o.PageSize-1)/o.PageSize)
	v.Page = min(max(rq.Page, 1), v.Pages)
	lo := (v.Page - 1) * o.PageSize
	hi := min(lo+o.PageSize, v.Total)
	if v.Total > 0 {
		v.From, v.To = lo+1, hi
	}
	var res *VerifyResult
	if s.Verify != nil {
		res = s.Verify.Result
	}
	for _, i := range idx[lo:hi] {
		r := &s.Records[i]
		rw := row{
			Path: r.FilePath, Hash: r.FileHash, CID: r.IPFSCID, Event: r.EventType, EventVersion: r.EventVersion,
			AnchoredAt: r.AnchoredAt, Pinned: s.pinned(r), Remote: r.RemotePins, Versions: versions[r.FilePath],
			HistoryURL: "/?" + url.Values{"file": {r.FilePath}}.Encode(), Latest: rq.File == "" || i == idx[0],
		}
		if r.IPFSCID != "" {
			rw.CIDURL = o.GatewayPrefix + url.PathEscape(r.IPFSCID)
		}
		if res != nil {
			// The verdict of record i, while it is the record that was
			// verified (same path, hash and CID); a record anchored or
			// changed since has none.
			rw.Verify = res.verdictFor(i, r)
			switch {
			case rw.Verify == "failed":
				rw.VerifyDetail = "details: ssid-anchor verify"
				if f := res.failure(i); f != nil {
					var why []string
					for _, c := range f.Checks {
						why = append(why, c.Name+": "+c.Detail)
					}
					rw.VerifyDetail = strings.Join(why, "; ")
				}
			case rw.Verify == "":
				rw.VerifyNote = "not in the last verification: anchored or changed since"
			}
		}
		v.Rows = append(v.Rows, rw)
	}
	page := func(n int) string {
		q := url.Values{}
		if rq.File != "" {
			q.Set("file", rq.File)
		}
		if rq.Filter != "" {
			q.Set("q", rq.Filter)
		}
		q.Set("page", strconv.Itoa(n))
		return "/?" + q.Encode() + "#anchors"
	}
	if v.Page > 1 {
		v.PrevURL = page(v.Page - 1)
	}
	if v.Page < v.Pages {
		v.NextURL = page(v.Page + 1)
	}
	if res != nil {
		v.VerifyFailed = res.Failures[:min(len(res.Failures), failuresShown)]
		v.VerifyMore = res.Failed - len(v.VerifyFailed)
	}

	// Telemetry: the current reading is the latest-dated point.
	for i := range s.Telemetry.Points {
		p := &s.Telemetry.Points[i]
		if v.Current == nil || !p.Date.Before(v.Current.Date) {
			v.Current = p
		}
	}
	if v.Current != nil {
		v.ScoreClass = scoreClass(v.Current.Score, s.Telemetry.Min, s.Telemetry.Critical)
	}
	if s.Telemetry.Enabled && len(s.Telemetry.Points) > 0 {
		v.Chart = scoreChart(s.Telemetry.Points, s.Telemetry.Min, s.Telemetry.Critical)
	}
	v.remotePins(s.RemotePins)
	v.Jobs = slices.Clone(s.Jobs)
	for i := range v.Jobs {
		v.Jobs[i].Outcome = redact(v.Jobs[i].Outcome)
	}
	v.ManifestProblem, v.ChainNote, v.Tel.Problem = redact(v.ManifestProblem), redact(v.ChainNote), redact(v.Tel.Problem)
	if s.Verify != nil {
		vr := *s.Verify
		vr.Err = redact(vr.Err)
		v.Verify = &vr
	}
	v.Tiles = tiles(s, v, files, now)
	return v
}

func scoreClass(score, min, critical float64) string {
	switch {
	case critical > 0 && score < critical:
		return "bad"
	case min > 0 && score < min:
		return "warn"
	}
	return "ok"
}

func tiles(s *Snapshot, v *view, files int, now time.Time) []tile {
	pinned := 0
	for i := range s.Records {
		if s.pinned(&s.Records[i]) {
			pinned++
		}
	}
	out := []tile{{Label: "Anchored files", Value: strconv.Itoa(files), Note: plural(len(s.Records), "record"), Href: "#anchors", Class: "ok"}}
	if len(s.Records) == 0 {
		out[0].Class = "muted"
	}
	pt := tile{Label: "Pinned locally", Value: fmt.Sprintf("%d/%d", pinned, len(s.Records)), Note: "records", Href: "#anchors", Class: "ok"}
	if pinned < len(s.Records) {
		pt.Class = "bad"
	}
	if s.RepoPinned == nil && s.PinsProblem != "" {
		pt.Note = "as the manifest says; the repo's pins: " + s.PinsProblem
	}
	if len(s.Records) == 0 {
		pt.Class = "muted"
	}
	out = append(out, pt)

	vt := tile{Label: "Last verify", Value: "never", Note: "POST /verify", Href: "#verify", Class: "muted"}
	if s.Verify != nil {
		vt.Note = ago(s.Verify.At, now)
		switch r := s.Verify.Result; {
		case s.Verify.Err != "":
			vt.Value, vt.Class = "error", "bad"
		case r != nil && r.OK:
			vt.Value, vt.Class = fmt.Sprintf("%d/%d ok", r.Passed, r.Records()), "ok"
		case r != nil:
			vt.Value, vt.Class = fmt.Sprintf("%d failed", r.Failed), "bad"
			if r.Failed == 0 {
				vt.Value = "chain broken"
			}
		}
		if r := s.Verify.Result; r != nil && len(s.Records) > r.Records() {
			// Not a verdict on the records anchored since.
			vt.Note += " · " + plural(len(s.Records)-r.Records(), "record") + " since"
		}
	}
	out = append(out, vt)

	ct := tile{Label: "Compliance score", Value: "off", Note: "telemetry disabled", Href: "#telemetry", Class: "muted"}
	if s.Telemetry.Enabled {
		ct.Value, ct.Note = "–", "no reading"
		if v.Current != nil {
			ct.Value, ct.Class = num(v.Current.Score), v.ScoreClass
			ct.Note = v.Current.Label
		}
	}
	out = append(out, ct)

	at := tile{Label: "Alerts firing", Value: strconv.Itoa(len(s.Telemetry.Alerts)), Note: "none", Href: "#alerts", Class: "ok"}
	for _, a := range s.Telemetry.Alerts {
		at.Note = a.Name
		if a.Level == "critical" {
			at.Class = "bad"
		} else if at.Class != "bad" {
			at.Class = "warn"
		}
	}
	if !s.Telemetry.Enabled {
		at.Class = "muted"
	}
	out = append(out, at)

	rt := tile{Label: "Remote pins", Value: "none", Note: "no service configured", Href: "#remote", Class: "muted"}
	if v.RemoteTotal > 0 || len(s.RemoteServices) > 0 {
		ok, bad := 0, 0
		for _, c := range v.RemoteCounts {
			ok, bad = ok+c.Pinned, bad+c.Failed
		}
		rt.Value, rt.Note, rt.Class = fmt.Sprintf("%d/%d", ok, v.RemoteTotal), "pinned", "ok"
		if bad > 0 {
			rt.Note, rt.Class = fmt.Sprintf("%d failed", bad), "bad"
		} else if ok < v.RemoteTotal {
			rt.Class = "warn"
		}
	}
	out = append(out, rt)
	return out
}

// remotePins counts the requests per service and status and picks the
// ones to list: failed first, then unfinished (oldest first: they have
// waited longest), then the most recently pinned. A box with thousands of
// records has thousands of requests; `ssid-anchor pins` lists them all.
func (v *view) remotePins(pins []RemotePin) {
	v.RemoteTotal = len(pins)
	at := map[string]int{}
	for _, p := range pins {
		k, ok := at[p.Service]
		if !ok {
			k = len(v.RemoteCounts)
			at[p.Service] = k
			v.RemoteCounts = append(v.RemoteCounts, remoteCount{Service: p.Service})
		}
		c := &v.RemoteCounts[k]
		switch p.Status {
		case "pinned":
			c.Pinned++
		case "pinning":
			c.Pinning++
		case "queued":
			c.Queued++
		case "failed":
			c.Failed++
		default:
			c.Other++
		}
	}
	rank := func(p *RemotePin) int {
		switch p.Status {
		case "failed":
			return 0
		case "pinned":
			return 2
		}
		return 1
	}
	idx := make([]int, len(pins))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		pa, pb := &pins[a], &pins[b]
		if c := rank(pa) - rank(pb); c != 0 {
			return c
		}
		if rank(pa) == 2 {
			return pb.Updated.Compare(pa.Updated) // newest pinned first
		}
		return pa.Updated.Compare(pb.Updated) // waiting longest first
	})
	// A copy: the source may hand every view the same slice.
	for _, i := range idx[:min(len(idx), remoteShown)] {
		p := pins[i]
		p.LastError = redact(p.LastError)
		v.RemotePins = append(v.RemotePins, p)
	}
	v.RemoteMore = len(pins) - len(v.RemotePins)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// urls finds URLs in free text. A webhook URL is a secret in its path
// (Slack, Discord), a token may sit in user info or the query: the console
// keeps only scheme and host of any URL in an error it shows. The errors
// should already be redacted where they are made; the page does not rely
// on it.
var urls = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)(?:[^/\s"'@]*@)?([^/\s"'?#]*)(?:[^\s"']*[^\s"':.,;)\]])?`)

func redact(s string) string {
	return urls.ReplaceAllString(s, "${1}${2}/***")
}

func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	if t.After(now) {
		return "in " + humanDuration(t.Sub(now))
	}
	return humanDuration(now.Sub(t)) + " ago"
}

func funcs(o Options) template.FuncMap {
	return template.FuncMap{
		"short": func(s string, n int) string {
			if len(s) <= n {
				return s
			}
			return s[:n] + "…"
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ago": func(t time.Time) string { return ago(t, o.Now()) },
		"dur": func(d time.Duration) string {
			if d < time.Second {
				return d.Round(time.Millisecond).String()
			}
			return d.Round(100 * time.Millisecond).String()
		},
		"num":    num,
		"plural": plural,
		"stamp": func(s string) string {
			// Manifest timestamps are RFC 3339; show them like the rest.
			if t, err := time.Parse(time.RFC3339, s); err == nil {
				return t.UTC().Format("2006-01-02 15:04 UTC")
			}
			return s
		},
		"pinClass": func(status string) string {
			switch status {
			case "pinned":
				return "ok"
			case "failed":
				return "bad"
			}
			return "warn"
		},
		"levelClass": func(level string) string {
			if level == "critical" {
				return "bad"
			}
			return "warn"
		},
		"gateway": func(c string) string { return o.GatewayPrefix + url.PathEscape(c) },
		"mid":     mid,
		"inc":     func(n int) int { return n + 1 },
		// link is a chain link for the "link" template; i 0 is the head.
		"link": func(i int, l ManifestLink) chainItem { return chainItem{I: i, L: l} },
	}
}

type chainItem struct {
	I int
	L ManifestLink
}

// mid shortens a long token (a CID, a peer ID) in the middle, as kubo's web
// UI does: its start says what kind it is, its end tells it from its
// neighbours. The page puts the whole value in a title and a link, and
// CSS keeps the short form on one line.
func mid(s string) string {
	const head, tail = 10, 6
	if len(s) <= head+tail+3 {
		return s
	}
	return s[:head] + "…" + s[len(s)-tail:]
}
