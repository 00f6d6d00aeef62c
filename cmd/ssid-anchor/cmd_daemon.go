package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/appconfig"
	"github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/control"
	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/scheduler"
	"github.com/urfave/cli/v2"
)

type daemonOptions struct {
	HTTP  string
	RPC   string
	Swarm []string
	// Debounce is how long the registry log must stay quiet before the
	// anchor job runs.
	Debounce time.Duration
	// Console, when set, builds the web console served at "/" (SPEC 4.8)
	// from the running daemon: buildStatus(ctx, d.statusGlobals(), d.node,
	// d) is its data, d.sched.Entries() the jobs, d.sched.Trigger(jobAnchor)
	// what its same-origin POST may start.
	Console func(d *daemon) http.Handler
	// Clock drives the scheduler; nil is the wall clock (tests pass a fake).
	Clock scheduler.Clock
	// Ready, when set, is called once the daemon serves (tests).
	Ready func(d *daemon)
}

func newDaemonCommand(g *globalOptions) *cli.Command {
	o := daemonOptions{Console: (*daemon).console}
	return &cli.Command{
		Name:  "daemon",
		Usage: "run the appliance: online node, scheduler, local gateway, control socket",
		Description: `Opens the node online for its profile and keeps it: it re-provides the
anchors, anchors when the registry log changes, runs telemetry every
check_interval_seconds and the quarterly pipeline on schedule.quarterly, and
serves the web console at /, /ipfs/<cid> (local content only), /healthz,
/metrics and /status on http.listen. It serves kubo's RPC API on rpc.listen
(default /ip4/127.0.0.1/tcp/5001) and writes <repo>/api, so the stock ipfs
CLI and scripts work against its node; an ipfs pin rm that would unpin an
anchor is refused. A remote-pins job pushes the remote pin
queue every minute and right after a run queued requests. Every other command run while it is up is executed by the daemon
on its open node (over <repo>/ssid-anchor.sock), with the same output and
exit code. SIGHUP reloads the appliance and telemetry configs; SIGTERM or
SIGINT cancels the running job at a safe point and exits 0. Under systemd
(Type=notify) it reports readiness and feeds the watchdog.

Exit codes: 0 stopped by a signal, 1 failure, 2 bad flag or config,
3 repo missing or already held (another daemon).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "http", Destination: &o.HTTP, Usage: "serve HTTP on `ADDR` (overrides http.listen; \"\" keeps it)"},
			&cli.StringFlag{Name: "rpc", Destination: &o.RPC, Usage: "serve kubo's RPC API on `MULTIADDR` (overrides rpc.listen; \"\" keeps it)"},
			&cli.StringSliceFlag{Name: "swarm", Usage: "listen on `MULTIADDR` (repeatable; overrides node.swarm)"},
			&cli.DurationFlag{Name: "anchor-debounce", Value: 2 * time.Second, Destination: &o.Debounce, Hidden: true,
				Usage: "anchor once the registry log has been quiet this long"},
		},
		Action: func(c *cli.Context) error {
			o.Swarm = c.StringSlice("swarm")
			return runDaemon(c.Context, o, g)
		},
	}
}

// daemon is the running appliance. Commands and jobs reach it through
// globalOptions.daemon.
type daemon struct {
	g          *globalOptions // the daemon's own options; cfg is guarded by mu
	o          daemonOptions
	node       *node.Node
	sched      *scheduler.Scheduler
	clock      scheduler.Clock
	metrics    *metrics
	anchorGate *jobGate
	// telemetryGate queues telemetry checks (the telemetry job, the
	// release's telemetry step) behind each other: each takes the
	// telemetry state lock.
	telemetryGate *jobGate
	started       time.Time
	ready         atomic.Bool
	httpAddr      string
	debounce      time.Duration
	rpc           *node.RPCServer // kubo's RPC API; nil when rpc.listen is ""
	counts        anchorCounts    // the manifest's records counted, while it is unchanged

	mu        sync.Mutex
	cfg       appconfig.Config
	ipnsValue string
	ipnsName  string
	ipnsAt    time.Time
	ipnsErr   string
	problems  []configProblem // configured jobs that cannot run (addJobs)
}

func runDaemon(ctx context.Context, o daemonOptions, g *globalOptions) error {
	cfg := g.cfg
	if o.HTTP != "" {
		cfg.HTTP.Listen = o.HTTP
	}
	if o.RPC != "" {
		cfg.RPC.Listen = o.RPC
	}
	if len(o.Swarm) > 0 {
		cfg.Node.Swarm = o.Swarm
	}
	if err := cfg.Validate(); err != nil {
		return usagef("daemon: %v", err)
	}
	if _, err := tree.OpenRoot(g.Root); err != nil {
		return usagef("--root: %v", err)
	}
	if c, err := control.Dial(g.Repo); err == nil {
		c.Close()
		return fmt.Errorf("%w: a daemon already serves %s (socket %s)", node.ErrLocked, g.Repo, control.SocketPath(g.Repo))
	}
	n, release, err := g.openNode(ctx, node.OpenOptions{Online: true, Swarm: cfg.Node.Swarm, Peering: cfg.Node.Peering, Routing: cfg.Node.Routing})
	if err != nil {
		return err
	}
	defer release()
	g.shared = n

	d := &daemon{g: g, o: o, node: n, cfg: cfg, clock: o.Clock, anchorGate: newJobGate(), telemetryGate: newJobGate(), started: time.Now().UTC(), debounce: o.Debounce}
	if d.debounce <= 0 {
		d.debounce = 2 * time.Second
	}
	if d.clock == nil {
		d.clock = scheduler.RealClock{}
	}
	d.metrics = newMetrics(d)
	sched, err := scheduler.New(scheduler.Options{
		StatePath: filepath.Join(n.RepoPath(), "scheduler.json"), Log: g.log, Clock: d.clock,
		OnDone: func(job string, took time.Duration, err error) {
			d.metrics.jobDone(job, took, err)
			releaseMemory() // the job's peak is not kept while idle
		},
	})
	if err != nil {
		return err
	}
	d.sched = sched
	if err := d.addJobs(cfg); err != nil {
		return usageError{err}
	}
	if err := d.startRPC(); err != nil {
		return err
	}
	defer d.stopRPC(context.Background())

	var ln net.Listener
	if cfg.HTTP.Listen != "" {
		ln, err = net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
		}
		d.httpAddr = ln.Addr().String()
	}
	// IdleTimeout: without it (and no ReadTimeout) an idle keep-alive
	// connection is held open for ever; it does not cut a response short.
	srv := &http.Server{Handler: d.httpHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
	if ln != nil {
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("http server", "err", err)
			}
		}()
	}

	ctl, err := control.Listen(n.RepoPath(), d.serveRequest, control.ServerOptions{Log: g.log, RedactArgv: redactArgv})
	if err != nil {
		srv.Close()
		return err
	}
	go ctl.Serve()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// Reloads run beside the loop, which alone feeds the watchdog: a
	// reload that reads or checks slowly must not look like a wedged
	// daemon to systemd.
	reloads := newReloader(func() {
		sddaemon.SdNotify(false, sddaemon.SdNotifyReloading)
		d.reload()
		sddaemon.SdNotify(false, sddaemon.SdNotifyReady)
	})

	stopWatch, err := d.watchRegistry()
	if err != nil {
		g.log.Warn("not watching the registry log; anchoring runs only on schedule and on `ssid-anchor anchor`", "err", err)
		stopWatch = func() {}
	}
	sched.Start()
	// Events appended while the daemon was down (or a run that SIGTERM
	// cut short) are anchored now.
	sched.Trigger(jobAnchor)
	d.refreshAnchorStats()
	releaseMemory() // what starting the node touched
	d.ready.Store(true)
	g.log.Info("daemon ready", "peer_id", n.PeerID(), "profile", n.Profile(), "routing", n.Routing(),
		"http", d.httpAddr, "socket", ctl.Path(), "addresses", n.Addrs())
	if _, err := sddaemon.SdNotify(false, sddaemon.SdNotifyReady+"\nSTATUS=serving "+n.PeerID()); err != nil {
		g.log.Warn("sd_notify READY", "err", err)
	}
	if o.Ready != nil {
		o.Ready(d)
	}
	var watchdog <-chan time.Time
	if iv, err := sddaemon.SdWatchdogEnabled(false); err == nil && iv > 0 {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		watchdog = t.C
		g.log.Info("systemd watchdog enabled", "interval", iv)
	}

	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-hup:
			reloads.request()
		case <-watchdog:
			// Fed only while the loop runs: a wedged daemon is restarted.
			sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog)
		}
	}

	g.log.Info("stopping: no new jobs or commands; cancelling the running ones at a safe point")
	sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
	d.ready.Store(false)
	reloads.stop() // a reload in progress finishes before the jobs stop
	stopWatch()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ctl.Close(sctx); err != nil {
		g.log.Warn("commands still running at shutdown", "err", err)
	}
	if err := sched.Stop(sctx); err != nil {
		g.log.Warn("jobs still running at shutdown", "err", err)
	}
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	srv.Shutdown(hctx)
	d.stopRPC(hctx)
	g.log.Info("daemon stopped; closing the node and releasing the repo lock")
	return nil
}

// serveRequest runs one forwarded command on the open node.
func (d *daemon) serveRequest(ctx context.Context, req control.Request, stdout, stderr io.Writer) int {
	g := &globalOptions{stdout: stdout, stderr: stderr, shared: d.node, served: true, daemon: d,
		getenv: func(k string) string {
			if v, ok := req.Env[k]; ok {
				return v
			}
			return os.Getenv(k)
		}}
	if len(req.Argv) < 2 {
		fmt.Fprintf(stderr, "ssid-anchor: the daemon runs only %s\n", strings.Join(keysOf(forwardedCommands), ", "))
		return exitUsage
	}
	d.g.log.Info("command", "argv", redactArgv(req.Argv), "cwd", req.Cwd)
	defer releaseMemory()
	// Which command runs, and on which repo, is decided by the parser that
	// runs it (checkServed, in the app's Before), never by a second reading
	// of argv that could disagree with it.
	return runWith(ctx, g, req.Argv)
}

// redactArgv keeps flags' names and drops values that might be URLs with
// credentials (--gateway) from the daemon's log.
func redactArgv(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = a
		if len(a) > 10 && a[:10] == "--gateway=" {
			out[i] = "--gateway=***"
		}
	}
	return out
}

func keysOf(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// config is the appliance config in force (it changes on SIGHUP).
func (d *daemon) config() appconfig.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// reload re-reads the appliance config and the telemetry config. A bad
// config is logged and the old one kept. Node and HTTP settings need a
// restart; the rest applies at once.
func (d *daemon) reload() {
	log := d.g.log
	old := d.config()
	next, err := appconfig.Load(d.g.configPath(), d.g.ConfigFile != "")
	if err == nil && d.o.HTTP != "" {
		next.HTTP.Listen = d.o.HTTP
	}
	if err == nil && d.o.RPC != "" {
		next.RPC.Listen = d.o.RPC
	}
	if err == nil && len(d.o.Swarm) > 0 {
		next.Node.Swarm = d.o.Swarm
	}
	if err == nil {
		err = next.Validate()
	}
	if err == nil {
		err = d.checkJobs(next)
	}
	if err != nil {
		log.Error("SIGHUP: config not reloaded; keeping the one in force", "err", err)
		return
	}
	changed := diffSections(old, next)
	for _, s := range changed {
		if s == "node" || s == "http" || s == "rpc" {
			log.Warn("SIGHUP: this section changed but takes effect only at restart", "section", s)
		}
	}
	d.mu.Lock()
	d.cfg = next
	d.mu.Unlock()
	if err := d.addJobs(next); err != nil {
		log.Error("SIGHUP: rescheduling", "err", err)
	}
	var jobs []string
	for _, e := range d.sched.Entries() {
		jobs = append(jobs, e.Name+"="+e.Spec)
	}
	log.Info("SIGHUP: configs reloaded", "changed_sections", changed, "jobs", strings.Join(jobs, ", "))
}

// reloader runs reloads one at a time on a goroutine of its own. A
// request while one runs leaves one more pending (it reads the newest
// files); more requests meanwhile add nothing.
type reloader struct {
	pending chan struct{}
	done    chan struct{}
}

func newReloader(reload func()) *reloader {
	r := &reloader{pending: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for range r.pending {
			reload()
		}
	}()
	return r
}

// request asks for a reload and returns at once.
func (r *reloader) request() {
	select {
	case r.pending <- struct{}{}:
	default: // one is pending already
	}
}

// stop waits for the reload in progress, if any, and drops a pending one.
func (r *reloader) stop() {
	select {
	case <-r.pending:
	default:
	}
	close(r.pending)
	<-r.done
}

// diffSections names the top-level config sections that differ.
func diffSections(a, b appconfig.Config) []string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	for i := range t.NumField() {
		ja, _ := json.Marshal(va.Field(i).Interface())
		jb, _ := json.Marshal(vb.Field(i).Interface())
		if string(ja) != string(jb) {
			name := t.Field(i).Tag.Get("json")
			out = append(out, name)
		}
	}
	return out
}

// afterAnchor announces what an anchoring run added and, when the node has
// a router, points its IPNS name at the new manifest. Failures are
// reported, not fatal: the records are durable and kubo's provider
// re-announces pinned content on its own cycle.
func (d *daemon) afterAnchor(ctx context.Context, res anchorResult, w io.Writer) {
	d.refreshAnchorStats()
	if !res.changed {
		return
	}
	if err := d.node.Provide(ctx, res.cids...); err != nil {
		fmt.Fprintf(w, "warning: announcing the new anchors: %v (kubo's provider retries on its cycle)\n", err)
		d.metrics.provideFailures.Inc()
	}
	if d.node.Routing() == node.RoutingNone || res.manifestCID == "" {
		return
	}
	name, err := d.node.PublishIPNS(ctx, res.manifestCID)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.ipnsErr = err.Error()
		fmt.Fprintf(w, "warning: publishing the manifest under IPNS: %v\n", err)
		d.metrics.ipnsFailures.Inc()
		return
	}
	d.ipnsValue, d.ipnsName, d.ipnsAt, d.ipnsErr = res.manifestCID, name, time.Now().UTC(), ""
	fmt.Fprintf(w, "published %s -> /ipfs/%s\n", name, res.manifestCID)
}
