package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/ops"
	"github.com/ssid/ssid-anchor/scheduler"
)

// Job names, as shown by status and in metrics.
const (
	jobAnchor    = "anchor"    // on demand: the registry log changed, or at start
	jobQuarterly = "quarterly" // schedule.quarterly
	jobTelemetry = "telemetry" // every check_interval_seconds or schedule.telemetry
	// jobRemotePins drains the remote pin queue: every minute while a
	// service is configured, and right after a run queued requests.
	jobRemotePins = "remote-pins"
)

// step is one named stage of a job's pipeline. A failed step stops the
// steps after it unless they are marked always (telemetry still reports
// when anchoring failed: that is what it is for).
type step struct {
	name   string
	always bool
	run    func(ctx context.Context, g *globalOptions) error
}

// quarterlySteps is the quarterly pipeline (SPEC 4.5: bundle → anchor →
// remote pin → telemetry with the release notice): the same code as
// `ssid-anchor release`, which reports each step to the log. Its anchor
// step waits at the anchoring gate and its telemetry step at the
// telemetry gate, so it queues behind the other jobs instead of failing
// on their locks.
func (d *daemon) quarterlySteps() []step {
	return []step{{name: "release", run: d.releaseStep}}
}

func (d *daemon) releaseStep(ctx context.Context, g *globalOptions) error {
	return runRelease(ctx, releaseOptions{}, g)
}

// pipeline runs steps in order as one scheduler job; each step's output
// goes to the log, tagged with the job and step.
func (d *daemon) pipeline(job string, steps []step) scheduler.Job {
	return func(ctx context.Context) error {
		var errs []error
		for _, s := range steps {
			if len(errs) > 0 && !s.always {
				d.g.log.Warn("step skipped after an earlier failure", "job", job, "step", s.name)
				continue
			}
			if ctx.Err() != nil {
				return errors.Join(append(errs, ctx.Err())...)
			}
			g := d.jobGlobals(job, s.name)
			if err := s.run(ctx, g); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			}
			g.stderr.(*logWriter).flush()
		}
		return errors.Join(errs...)
	}
}

// addJobs (re)registers every job for cfg.
func (d *daemon) addJobs(cfg appconfig.Config) error {
	if err := d.checkJobs(cfg); err != nil {
		return err
	}
	d.sched.AddTriggered(jobAnchor, d.pipeline(jobAnchor, []step{{name: "anchor", run: d.anchorStep}}))
	if cfg.Schedule.Quarterly != "" {
		if err := d.sched.Add(jobQuarterly, cfg.Schedule.Quarterly, d.pipeline(jobQuarterly, d.quarterlySteps())); err != nil {
			return err
		}
	} else {
		d.sched.Remove(jobQuarterly)
	}
	if spec := remotePinsSpec(cfg); spec != "" {
		if err := d.sched.Add(jobRemotePins, spec, d.pipeline(jobRemotePins, []step{{name: "drain", run: d.remotePinsStep}})); err != nil {
			return err
		}
	} else {
		d.sched.Remove(jobRemotePins)
	}
	problems := configProblems(d.jobGlobals(jobTelemetry, "schedule"), cfg)
	d.mu.Lock()
	d.problems = problems
	d.mu.Unlock()
	for _, p := range problems {
		d.g.log.Error("configured job cannot run", "job", p.Job, "reason", p.Reason)
	}
	spec, why := d.telemetrySpec(cfg)
	if spec == "" {
		d.sched.Remove(jobTelemetry)
		if !slices.ContainsFunc(problems, func(p configProblem) bool { return p.Job == jobTelemetry }) {
			d.g.log.Info("no telemetry job", "reason", why)
		}
		return nil
	}
	return d.sched.Add(jobTelemetry, spec, d.pipeline(jobTelemetry, []step{{name: "telemetry", run: d.telemetryStep}}))
}

// configProblem is a configured job that cannot run as configured: a
// missing secret, an unreadable or invalid config. The daemon logs it as
// an error, /healthz answers 503 with it, /metrics counts it
// (ssid_anchor_config_problems) and status names it (SPEC 4.5).
type configProblem struct {
	Job    string `json:"job"`
	Reason string `json:"reason"`
}

func (p configProblem) String() string { return p.Job + ": " + p.Reason }

// configProblems lists the configured jobs of cfg that cannot run, read
// with g's environment: telemetry whose config exists but cannot be used
// (a channel's secret variable unset, a syntax error), and remote pinning
// services whose token variables are unset. Telemetry that is disabled,
// or has no config file, is not configured and not a problem.
func configProblems(g *globalOptions, cfg appconfig.Config) []configProblem {
	var out []configProblem
	gg := *g
	gg.cfg = cfg
	if _, why, problem := telemetryJob(&gg); problem {
		out = append(out, configProblem{Job: jobTelemetry, Reason: "not scheduled: " + why})
	}
	for _, s := range pinning.WithPresets(cfg.RemotePinning.Services) {
		if miss := pinning.MissingEnv(s, g.env); len(miss) > 0 {
			out = append(out, configProblem{Job: jobRemotePins, Reason: fmt.Sprintf("service %s: token variable %s is not set; its requests cannot be sent", s.Name, strings.Join(miss, " and "))})
		}
	}
	return out
}

// configProblems is what the running daemon found at start or the last
// reload.
func (d *daemon) configProblems() []configProblem {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.problems)
}

// remotePinsSpec is when the remote-pins job runs: every
// remotePinInterval while any service is configured, else never ("").
// `status` without a daemon lists the same jobs from it.
func remotePinsSpec(cfg appconfig.Config) string {
	if len(cfg.RemotePinning.Services) == 0 {
		return ""
	}
	return "@every " + remotePinInterval.String()
}

// checkJobs validates the specs before anything is replaced.
func (d *daemon) checkJobs(cfg appconfig.Config) error {
	if s := cfg.Schedule.Quarterly; s != "" {
		if err := scheduler.ParseSpec(s); err != nil {
			return fmt.Errorf("schedule.quarterly: %q is not a cron spec: %v", s, err)
		}
	}
	if s := cfg.Schedule.Telemetry; s != "" {
		if err := scheduler.ParseSpec(s); err != nil {
			return fmt.Errorf("schedule.telemetry: %q is not a cron spec: %v", s, err)
		}
	}
	return nil
}

// telemetrySpec is schedule.telemetry if set, else every
// check_interval_seconds of the telemetry config; "" and the reason when
// telemetry is off or its config unusable.
func (d *daemon) telemetrySpec(cfg appconfig.Config) (string, string) {
	g := d.jobGlobals(jobTelemetry, "schedule")
	g.cfg = cfg
	return telemetrySpecFor(g)
}

func telemetrySpecFor(g *globalOptions) (string, string) {
	spec, why, _ := telemetryJob(g)
	return spec, why
}

// telemetryJob is telemetrySpecFor and whether a "" spec is a problem
// (the config exists but cannot be used) rather than telemetry being off
// (disabled, or no config file).
func telemetryJob(g *globalOptions) (spec, why string, problem bool) {
	s, err := ops.LoadTelemetryConfig(g.opsEnv())
	if err == nil {
		defer s.Root.Close()
	}
	switch {
	case err != nil:
		return "", err.Error(), !telemetryConfigAbsent(g)
	case s.Invalid != nil:
		return "", ops.InvalidTelemetryConfig(s.ConfigRel, s.Invalid).Error(), true
	case !s.Config.Enabled:
		return "", "telemetry is disabled (enabled: false in " + s.ConfigRel + ")", false
	case g.cfg.Schedule.Telemetry != "":
		return g.cfg.Schedule.Telemetry, "", false
	}
	return "@every " + s.Config.CheckInterval().String(), "", false
}

// telemetryConfigAbsent reports whether the telemetry config file does not
// exist (telemetry not set up: not a problem).
func telemetryConfigAbsent(g *globalOptions) bool {
	root, err := tree.OpenRoot(g.Root)
	if err != nil {
		return false
	}
	defer root.Close()
	_, err = root.Stat(g.cfg.Paths.TelemetryConfig)
	return errors.Is(err, fs.ErrNotExist)
}

// jobGlobals are the options a job's step runs with: the daemon's config
// and node, output to the log.
func (d *daemon) jobGlobals(job, stepName string) *globalOptions {
	log := d.g.log.With("job", job, "step", stepName)
	w := &logWriter{log: log}
	return &globalOptions{
		Root: d.g.Root, Repo: d.g.Repo, ConfigFile: d.g.ConfigFile, LogLevel: d.g.LogLevel, LogFormat: d.g.LogFormat,
		stdout: w, stderr: w, log: log, cfg: d.config(), now: d.g.now,
		shared: d.node, served: true, daemon: d, jobName: job,
	}
}

func (d *daemon) anchorStep(ctx context.Context, g *globalOptions) error {
	return runAnchor(ctx, anchorOptions{}, g)
}

func (d *daemon) telemetryStep(ctx context.Context, g *globalOptions) error {
	leave, err := g.enterTelemetry(ctx)
	if err != nil {
		return err
	}
	defer leave()
	rep, err := telemetryCheck(ctx, g)
	if rep != nil {
		d.metrics.telemetryDone(rep)
	}
	return err
}

// ---- serialising anchoring runs ----

// jobGate lets one holder at a time do a kind of work (anchoring: every
// run takes the manifest lock). Others wait, and say so, instead of
// failing on the lock: inside the daemon two `anchor`s both finish.
type jobGate struct {
	slot   chan struct{}
	mu     sync.Mutex
	holder string
	since  time.Time
}

func newJobGate() *jobGate { return &jobGate{slot: make(chan struct{}, 1)} }

func (j *jobGate) enter(ctx context.Context, who string, w io.Writer) (func(), error) {
	select {
	case j.slot <- struct{}{}:
	default:
		j.mu.Lock()
		holder, since := j.holder, j.since
		j.mu.Unlock()
		fmt.Fprintf(w, "waiting for the running %s (started %s) to finish\n", holder, since.Format(time.RFC3339))
		select {
		case j.slot <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	j.mu.Lock()
	j.holder, j.since = who, time.Now().UTC()
	j.mu.Unlock()
	return func() {
		j.mu.Lock()
		j.holder = ""
		j.mu.Unlock()
		<-j.slot
	}, nil
}

// enterAnchoring waits for any other anchoring run in this daemon; a
// no-op in a one-shot process (the manifest lock decides there).
func (g *globalOptions) enterAnchoring(ctx context.Context) (func(), error) {
	if g.daemon == nil {
		return func() {}, nil
	}
	who := "`ssid-anchor anchor` command"
	if g.jobName != "" {
		who = "scheduled " + g.jobName + " job"
	}
	return g.daemon.anchorGate.enter(ctx, who, g.notices())
}

// enterTelemetry waits for any other telemetry check run by this daemon
// (the telemetry job, the quarterly release's telemetry step); a no-op in
// a one-shot process, where the state lock decides.
func (g *globalOptions) enterTelemetry(ctx context.Context) (func(), error) {
	if g.daemon == nil || g.daemon.telemetryGate == nil {
		return func() {}, nil
	}
	who := "telemetry check"
	if g.jobName != "" {
		who = "scheduled " + g.jobName + " job"
	}
	return g.daemon.telemetryGate.enter(ctx, who, g.notices())
}

// anchorResult is what the daemon needs to know after a run.
type anchorResult struct {
	changed     bool
	cids        []string
	manifestCID string
}

func anchorResultOf(res *anchor.Result) anchorResult {
	r := anchorResult{changed: res.Rewritten, manifestCID: res.ManifestCID}
	for _, rec := range res.Records {
		r.cids = append(r.cids, rec.IPFSCID)
	}
	for _, c := range []string{res.RunRoot, res.ManifestCID} {
		if c != "" {
			r.cids = append(r.cids, c)
		}
	}
	return r
}

// ---- watching the registry log ----

// watchRegistry triggers the anchor job, debounced, whenever the registry
// log changes (an `event` appended by another process, a git pull). It
// watches the log's directory with inotify (fsnotify), so a log replaced
// by rename is seen too; when that is impossible it polls.
func (d *daemon) watchRegistry() (func(), error) {
	root, err := tree.OpenRoot(d.g.Root)
	if err != nil {
		return nil, err
	}
	root.Close()
	// The path is only watched, never read through: a change merely
	// triggers an anchoring run, which reads the log through the confined
	// root. inotify needs a path, not a root-relative name.
	logPath := filepath.Join(root.Dir(), filepath.FromSlash(d.config().Paths.EventsLog))
	dir := filepath.Dir(logPath)
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(dir)
		if err != nil {
			w.Close()
		}
	}
	if err != nil {
		d.g.log.Warn("cannot watch the registry log's directory; polling it every 5s", "dir", dir, "err", err)
		return d.pollRegistry(logPath), nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) == logPath && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
					d.sched.TriggerAfter(jobAnchor, d.debounce)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				d.g.log.Warn("watching the registry log", "err", err)
			}
		}
	}()
	d.g.log.Info("watching the registry log", "path", logPath, "debounce", d.debounce)
	return func() { w.Close(); <-done }, nil
}

func (d *daemon) pollRegistry(logPath string) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	stamp := func() string {
		fi, err := os.Stat(logPath)
		if err != nil {
			return ""
		}
		return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
	}
	go func() {
		defer close(done)
		last := stamp()
		for {
			select {
			case <-stop:
				return
			case <-d.clock.After(5 * time.Second):
			}
			if s := stamp(); s != last {
				last = s
				d.sched.TriggerAfter(jobAnchor, d.debounce)
			}
		}
	}()
	return func() { close(stop); <-done }
}

// logWriter turns a step's human output into log lines.
type logWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(string(w.buf[:i]), "\r"); strings.TrimSpace(line) != "" {
			w.log.Info(line)
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(bytes.TrimSpace(w.buf)) > 0 {
		w.log.Info(string(w.buf))
	}
	w.buf = nil
}
