package main

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/telemetry"
)

// metrics are the daemon's Prometheus metrics, on a registry of its own
// (kubo registers its metrics on the default one; they are not ours to
// expose). Names are prefixed ssid_anchor_.
type metrics struct {
	reg *prometheus.Registry

	jobRuns, jobFailures *prometheus.CounterVec
	jobDuration          *prometheus.HistogramVec
	notifySent           *prometheus.CounterVec
	notifyFailed         *prometheus.CounterVec
	provideFailures      prometheus.Counter
	ipnsFailures         prometheus.Counter

	mu      sync.Mutex
	anchors anchorStats
}

// anchorStats are counted from the manifest after each anchoring run, not
// at every scrape.
type anchorStats struct {
	Records int `json:"anchors"`
	Files   int `json:"files"`
	// Pinned counts the records whose CID the node's repo pins (its pin
	// set, not the records' flags); ManifestPinned counts the flags.
	Pinned         int            `json:"pinned"`
	ManifestPinned int            `json:"manifest_pinned"`
	PinnedErr      string         `json:"pinned_error,omitempty"`
	RemotePins     map[string]int `json:"remote_pins"`
	Err            string         `json:"manifest_error,omitempty"`
}

func newMetrics(d *daemon) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := prometheus.WrapRegistererWithPrefix("ssid_anchor_", m.reg)
	m.jobRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "job_runs_total", Help: "Finished runs of each scheduled job."}, []string{"job"})
	m.jobFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "job_failures_total", Help: "Runs of each job that failed (including panics)."}, []string{"job"})
	m.jobDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "job_duration_seconds", Help: "How long each job's runs took.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}, []string{"job"})
	m.notifySent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "notifications_sent_total", Help: "Telemetry messages a channel accepted."}, []string{"channel"})
	m.notifyFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "notifications_failed_total", Help: "Telemetry messages a channel did not accept."}, []string{"channel"})
	m.provideFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "provide_failures_total", Help: "Announcements of new anchors that failed."})
	m.ipnsFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "ipns_publish_failures_total", Help: "IPNS publications of the manifest that failed."})
	f.MustRegister(m.jobRuns, m.jobFailures, m.jobDuration, m.notifySent, m.notifyFailed, m.provideFailures, m.ipnsFailures)
	f.MustRegister(buildInfoMetric()) // cmd_version.go

	stat := func(pick func(anchorStats) int) func() float64 {
		return func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(pick(m.anchors))
		}
	}
	f.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "anchors", Help: "Anchor records in the manifest."}, stat(func(s anchorStats) int { return s.Records })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "anchored_files", Help: "Distinct files with at least one anchor record."}, stat(func(s anchorStats) int { return s.Files })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pinned", Help: "Anchor records whose CID the local repo pins (its pin set, not the records' flags)."}, stat(func(s anchorStats) int { return s.Pinned })),
	)
	m.reg.MustRegister(newRemotePinCollector(m))
	if d != nil {
		m.reg.MustRegister(jobSuccessCollector{d: d, desc: prometheus.NewDesc("ssid_anchor_job_last_success_timestamp_seconds",
			"When each scheduled job last finished without an error (Unix time, 0 = never); kept across restarts in the scheduler's state file.", []string{"job"}, nil)})
	}
	if d != nil && d.node != nil {
		n := d.node
		f.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "provide_provided_total", Help: "CIDs queued for announcement since start."},
				func() float64 { return float64(n.ProvideStats().Provided) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "provide_last_timestamp_seconds", Help: "When the last announcement was queued (Unix time, 0 = never)."},
				func() float64 {
					if t := n.ProvideStats().LastProvide; !t.IsZero() {
						return float64(t.Unix())
					}
					return 0
				}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "provide_error", Help: "1 when the provider's last call failed."},
				func() float64 {
					if n.ProvideStats().Err != "" {
						return 1
					}
					return 0
				}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "connected_peers", Help: "Peers the node is connected to."},
				func() float64 { return float64(n.ConnectedPeers()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "config_problems", Help: "Configured jobs that cannot run (a missing secret, an unusable config); status and /healthz name them."},
				func() float64 { return float64(len(d.configProblems())) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ready", Help: "1 while the daemon serves."},
				func() float64 {
					if d.ready.Load() {
						return 1
					}
					return 0
				}),
		)
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// jobDone is the scheduler's OnDone.
func (m *metrics) jobDone(job string, took time.Duration, err error) {
	m.jobRuns.WithLabelValues(job).Inc()
	m.jobDuration.WithLabelValues(job).Observe(took.Seconds())
	if err != nil {
		m.jobFailures.WithLabelValues(job).Inc()
	}
}

// telemetryDone counts a check's deliveries per channel.
func (m *metrics) telemetryDone(rep *telemetry.Report) {
	for _, d := range rep.Deliveries {
		for ch, r := range d.Results {
			if r == "sent" {
				m.notifySent.WithLabelValues(ch).Inc()
			} else {
				m.notifyFailed.WithLabelValues(ch).Inc()
			}
		}
	}
}

// remotePinStatuses are the values of the status label of
// ssid_anchor_remote_pins: the Pinning Service API's states and "moved"
// (`pins move`); every other string a manifest holds counts as
// remotePinOther ("other", as in status's summariseRemotePins). The
// manifest is tree content that anyone who commits can edit, so a label
// value per distinct string would let it grow every scrape (and the
// daemon's memory) without bound.
var remotePinStatuses = []string{string(pinning.StatusQueued), string(pinning.StatusPinning), string(pinning.StatusPinned),
	string(pinning.StatusFailed), string(pinning.StatusMoved)}

// remotePinLabel is the label value a recorded status is counted under.
func remotePinLabel(status string) string {
	if slices.Contains(remotePinStatuses, status) {
		return status
	}
	return remotePinOther
}

// remotePinCollector exports remote pin requests by status.
type remotePinCollector struct {
	m    *metrics
	desc *prometheus.Desc
}

func newRemotePinCollector(m *metrics) prometheus.Collector {
	return remotePinCollector{m: m, desc: prometheus.NewDesc("ssid_anchor_remote_pins", "Remote pin requests recorded in the manifest, by status (other: a status this tool does not write).", []string{"status"}, nil)}
}

func (c remotePinCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect copies the counts and sends them without the lock: the registry
// reads ch on the goroutine that also runs the gauge functions, which take
// the same lock, so sending under it deadlocked the scrape, and then every
// anchoring run waiting to store its counts (refreshAnchorStats). Every
// label value is sent, 0 included, so the series do not come and go.
func (c remotePinCollector) Collect(ch chan<- prometheus.Metric) {
	counts := make(map[string]int, len(remotePinStatuses)+1)
	c.m.mu.Lock()
	for st, n := range c.m.anchors.RemotePins {
		counts[remotePinLabel(st)] += n
	}
	c.m.mu.Unlock()
	for _, st := range append(slices.Clone(remotePinStatuses), remotePinOther) {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}

// jobSuccessCollector exports each job's last success from the
// scheduler, which persists it: unlike the run counters, it does not
// start at zero when the daemon restarts.
type jobSuccessCollector struct {
	d    *daemon
	desc *prometheus.Desc
}

func (c jobSuccessCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c jobSuccessCollector) Collect(ch chan<- prometheus.Metric) {
	if c.d.sched == nil {
		return
	}
	for _, e := range c.d.sched.Entries() {
		v := 0.0
		if !e.LastSuccess.IsZero() {
			v = float64(e.LastSuccess.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, e.Name)
	}
}

// countAnchors reads the manifest of the tree at root and counts the
// records the repo of n pins (unknown when n is nil).
func countAnchors(ctx context.Context, root string, paths tree.Paths, n *node.Node) (anchorStats, *anchor.Manifest) {
	var cids []string
	s, m := countAnchorsCIDs(root, paths, &cids)
	if s.Err == "" {
		s.countPinned(ctx, n, parseCIDs(cids))
	}
	return s, m
}

// countAnchorsCIDs counts the manifest's records and returns their CIDs
// in *cids.
func countAnchorsCIDs(root string, paths tree.Paths, cids *[]string) (anchorStats, *anchor.Manifest) {
	s := anchorStats{RemotePins: map[string]int{}}
	r, err := tree.OpenRoot(root)
	if err != nil {
		s.Err = err.Error()
		return s, nil
	}
	defer r.Close()
	// Counted record by record: the records are not kept (issue 22).
	sum, err := anchor.SummarizeManifestIn(r, paths.Manifest)
	if err != nil {
		s.Err = err.Error()
		return s, nil
	}
	s.Records, s.Files, s.Pinned = sum.Records, sum.Files, sum.Pinned
	*cids = sum.CIDs
	for status, n := range sum.RemotePins {
		s.RemotePins[remotePinLabel(status)] += n
	}
	return s, sum.Head
}

// refreshAnchorStats recounts after a run (and at start).
func (d *daemon) refreshAnchorStats() {
	s, _ := d.counts.count(context.Background(), d.g.Root, d.config().Paths, d.node)
	d.metrics.mu.Lock()
	d.metrics.anchors = s
	d.metrics.mu.Unlock()
}
