package systemdunit

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's systemd section runs here as an operator runs it, in a
// scratch root that stands for /: every path under mappedPrefixes that a
// line or the installed unit names is taken under the scratch root, and a
// line that would name any other absolute path (but hostPaths) is refused
// before it runs, so a new README line cannot write to the machine's /etc.
// No systemd runs here (it is not PID 1), so the systemctl lines are
// emulated from the installed unit's own settings: ExecStart with its
// Environment= and EnvironmentFile=, NOTIFY_SOCKET and WATCHDOG_USEC for
// Type=notify, /proc mounted as ProcSubset= and ProtectProc= mount it,
// KillSignal= and TimeoutStopSec= to stop, ExecReload= to reload, and
// Restart= with RestartPreventExitStatus= to decide what a failed start
// would do. Not emulated: User= (everything runs as the test's user),
// the other sandboxing, and IPAddressDeny= (systemd-analyze checks those).
var mappedPrefixes = []string{"/etc/ssid-anchor", "/etc/systemd/system", "/var/lib/ssid-anchor", "/usr/local/bin", "/srv/ssid"}

// hostPaths are named as they are: reading them is harmless.
var hostPaths = map[string]bool{"/dev/null": true, "/bin/kill": true}

// secretVar is the RPC API secret the test's config names: the daemon
// starts only if the unit's EnvironmentFile= hands it over.
const secretVar = "SSID_TEST_RPC_SECRET"

// lineCase is what the test does with one line of the README's systemd
// section.
type lineCase struct {
	skip string // why it is not run, and what covers it instead
	// before prepares what the README asks of the operator between lines.
	before func(t *testing.T, b *box)
	// run: run the line (mapped); do: emulate it (systemctl).
	run   bool
	do    func(t *testing.T, b *box)
	check func(t *testing.T, b *box, out string)
}

// systemdLines: every line of the code blocks in the README's "systemd"
// section, as written (a trailing "# comment" removed, spaces collapsed).
// A README line missing here, or an entry the README no longer shows,
// fails the test.
var systemdLines = map[string]lineCase{
	"useradd --system --home-dir /var/lib/ssid-anchor --shell /usr/sbin/nologin ssid-anchor": {skip: "would create a system account on the machine running the tests; the other lines run as the test's own user, with -o/-g ssid-anchor and sudo -u ssid-anchor left out"},
	"install -m 755 bin/ssid-anchor /usr/local/bin/":                                         {run: true},
	"install -d -m 755 /etc/ssid-anchor":                                                     {run: true},
	"test -e /etc/ssid-anchor/appliance.json || install -m 644 configs/appliance.default.json /etc/ssid-anchor/appliance.json": {run: true, check: func(t *testing.T, b *box, _ string) {
		if got, want := readFile(t, b.path("/etc/ssid-anchor/appliance.json")), readFile(t, "../../configs/appliance.default.json"); got != want {
			t.Errorf("/etc/ssid-anchor/appliance.json is not configs/appliance.default.json")
		}
	}},
	"test -e /etc/ssid-anchor/env || install -m 600 /dev/null /etc/ssid-anchor/env": {run: true, check: func(t *testing.T, b *box, _ string) {
		st, err := os.Stat(b.path("/etc/ssid-anchor/env"))
		if err != nil || st.Mode().Perm() != 0o600 || st.Size() != 0 {
			t.Errorf("/etc/ssid-anchor/env: %v %v, want an empty file of mode 600", st, err)
		}
	}},
	"install -d -o ssid-anchor -g ssid-anchor -m 700 /var/lib/ssid-anchor": {run: true},
	"sudo -u ssid-anchor ssid-anchor --repo /var/lib/ssid-anchor/repo --config /etc/ssid-anchor/appliance.json init": {run: true, before: editConfig, check: func(t *testing.T, b *box, out string) {
		// The daemon below must not dial the public network from a test.
		p, err := os.ReadFile(filepath.Join(b.path("/var/lib/ssid-anchor/repo"), "ssid-anchor-profile"))
		if err != nil || strings.TrimSpace(string(p)) != "air-gapped" || !strings.Contains(out, "peer id:") {
			t.Fatalf("init did not create an air-gapped repo from the config's node.profile (%q, %v):\n%s", p, err, out)
		}
	}},
	"install -m 644 scripts/ssid-anchor.service /etc/systemd/system/": {run: true},
	// daemon-reload: systemd loads the unit (and its drop-ins) again;
	// systemd-analyze verify loads the installed set and must say nothing.
	"systemctl daemon-reload": {do: func(t *testing.T, b *box) { b.verifyInstalled(t) }},
	// enable --now: enabling needs an [Install] section; then start.
	"systemctl enable --now ssid-anchor": {do: func(t *testing.T, b *box) {
		if u := b.load(t); !contains(u.list("Install.WantedBy"), "multi-user.target") {
			t.Fatalf("the unit has no WantedBy=multi-user.target: systemctl enable would not start it at boot")
		}
		b.start(t).awaitReady(t)
		b.checkRunning(t)
	}},
	"systemctl status ssid-anchor":     {skip: "needs a service manager; what it shows of a stopped unit (the exit code and the daemon's message) is checked by the exit-code cases after these lines"},
	"journalctl -u ssid-anchor -o cat": {skip: "needs the journal; the daemon's log lines on stderr are read by the emulated start (JSON, --log-format json)"},
	"systemctl reload ssid-anchor":     {do: func(t *testing.T, b *box) { b.reload(t) }},
	"sudo -u ssid-anchor ssid-anchor --root /srv/ssid --repo /var/lib/ssid-anchor/repo status": {run: true, check: func(t *testing.T, b *box, out string) {
		// Sent to the running daemon, which runs it with its config: the
		// quarterly spec of /etc/ssid-anchor/appliance.json, the tree named.
		if !strings.Contains(out, quarterlyMarker) || !strings.Contains(out, b.path("/srv/ssid")) || !strings.Contains(out, "running") {
			t.Errorf("status does not show the running daemon with the config of /etc/ssid-anchor and the tree /srv/ssid:\n%s", out)
		}
	}},
	"systemd-analyze security --offline=true /etc/systemd/system/ssid-anchor.service": {run: true, check: func(t *testing.T, b *box, out string) {
		if !overallRE.MatchString(out) {
			t.Errorf("no overall exposure in:\n%s", out)
		}
	}},
	"install -D -m 644 scripts/ssid-anchor-airgapped.conf /etc/systemd/system/ssid-anchor.service.d/airgapped.conf": {run: true},
	"systemctl restart ssid-anchor": {do: func(t *testing.T, b *box) {
		if u := b.load(t); !contains(u.list("Service.IPAddressDeny"), "any") {
			t.Fatalf("after installing the drop-in the unit has no IPAddressDeny=any")
		}
		b.stop(t)
		b.start(t).awaitReady(t)
		b.checkRunning(t)
	}},
}

// quarterlyMarker is the schedule the operator's edit sets, so that status
// shows which config the daemon runs with.
const quarterlyMarker = "0 3 * * 1"

// box is the scratch root and the service running from it.
type box struct {
	root     string // stands for /
	checkout string // the module root: lines run there ("from a checkout")
	bin      string
	lines    []string // the README's systemd lines
	svc      *service
}

func (b *box) path(p string) string {
	for _, pre := range mappedPrefixes {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return b.root + p
		}
	}
	return p
}

// mapWord maps the absolute path in one word: /x, -/x (EnvironmentFile=)
// or KEY=/x (Environment=).
func (b *box) mapWord(w string) string {
	if i := strings.Index(w, "=/"); i >= 0 {
		return w[:i+1] + b.mapWord(w[i+1:])
	}
	if strings.HasPrefix(w, "-/") {
		return "-" + b.path(w[1:])
	}
	if strings.HasPrefix(w, "/") {
		return b.path(w)
	}
	return w
}

// confined fails unless every absolute path in words is under the scratch
// root, one of hostPaths or the built binary (which bin/ssid-anchor is).
func (b *box) confined(t *testing.T, what string, words []string) {
	t.Helper()
	for _, w := range words {
		if i := strings.Index(w, "=/"); i >= 0 {
			w = w[i+1:]
		}
		w = strings.TrimPrefix(w, "-")
		if strings.HasPrefix(w, "/") && !strings.HasPrefix(w, b.root+"/") && !hostPaths[w] && w != b.bin {
			t.Fatalf("%s names %s, outside the scratch root: add its prefix to mappedPrefixes (or hostPaths, if it is only read)", what, w)
		}
	}
}

// mapLine turns a README line into the command run here.
func (b *box) mapLine(t *testing.T, line string) string {
	t.Helper()
	f := strings.Fields(line)
	if len(f) > 3 && f[0] == "sudo" && f[1] == "-u" && f[2] == "ssid-anchor" {
		f = f[3:]
	}
	var out []string
	for i := 0; i < len(f); i++ {
		switch {
		case f[0] == "install" && (f[i] == "-o" || f[i] == "-g") && i+1 < len(f) && f[i+1] == "ssid-anchor":
			i++ // the test's own user owns everything
		case f[i] == "bin/ssid-anchor":
			out = append(out, b.bin)
		default:
			out = append(out, b.mapWord(f[i]))
		}
	}
	b.confined(t, fmt.Sprintf("README line %q", line), out)
	return strings.Join(out, " ")
}

// sh runs a README line, mapped, with bash in the checkout, as root (or
// the daemon's user, for sudo -u lines) would with a reset environment.
func (b *box) sh(t *testing.T, line string) string {
	t.Helper()
	run := b.mapLine(t, line)
	cmd := exec.Command("bash", "-c", run)
	cmd.Dir = b.checkout
	cmd.Env = []string{
		"PATH=" + b.path("/usr/local/bin") + ":" + os.Getenv("PATH"),
		"HOME=" + b.path("/var/lib/ssid-anchor"),
	}
	out, err := cmd.CombinedOutput()
	t.Logf("ran %s: %v", run, err)
	if err != nil {
		t.Fatalf("README line %q (run as %q): %v\n%s", line, run, err, out)
	}
	return string(out)
}

// installed is the unit and its drop-ins as installed in the scratch root.
func (b *box) installed(t *testing.T) []string {
	t.Helper()
	unit := b.path("/etc/systemd/system/" + unitName)
	dropIns, err := filepath.Glob(b.path("/etc/systemd/system/" + unitName + ".d/*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(dropIns)
	return append([]string{unit}, dropIns...)
}

func (b *box) load(t *testing.T) unitConf {
	t.Helper()
	return parseUnitConf(t, b.installed(t)...)
}

// mapUnitLine maps the paths in a unit file's setting line.
func (b *box) mapUnitLine(l string) string {
	k, v, ok := strings.Cut(l, "=")
	if !ok || strings.HasPrefix(strings.TrimSpace(l), "#") {
		return l
	}
	nl := strings.HasSuffix(v, "\n")
	words := strings.Fields(v)
	for i, w := range words {
		words[i] = b.mapWord(w)
	}
	v = strings.Join(words, " ")
	if nl {
		v += "\n"
	}
	return k + "=" + v
}

// verifyInstalled is daemon-reload: systemd-analyze verify loads the
// installed unit and drop-ins (their paths mapped into the scratch root,
// so ExecStart is the installed binary) and must print nothing.
func (b *box) verifyInstalled(t *testing.T) {
	t.Helper()
	files := b.installed(t)
	dropIns := map[string]string{}
	for _, f := range files[1:] {
		dropIns[filepath.Base(f)] = readFile(t, f)
	}
	p := unitSet(t, b.mapUnitLine, readFile(t, files[0]), dropIns)
	if out, code := analyze(t, nil, "verify", p); code != 0 || out != "" {
		t.Fatalf("systemd-analyze verify of the installed unit (%d drop-ins): exit %d:\n%s", len(dropIns), code, out)
	}
}

// editConfig is what the README asks of the operator before init: set up
// /etc/ssid-anchor/appliance.json (here: the air-gapped profile, free
// loopback ports instead of 8089 and 5001, an RPC authorization whose
// secret is in the env file, a quarterly spec status will show) and put
// the secret in /etc/ssid-anchor/env. Running the guarded install lines
// again must keep both.
func editConfig(t *testing.T, b *box) {
	t.Helper()
	cfgPath, envPath := b.path("/etc/ssid-anchor/appliance.json"), b.path("/etc/ssid-anchor/env")
	var cfg map[string]any
	if err := json.Unmarshal([]byte(readFile(t, cfgPath)), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["node"].(map[string]any)["profile"] = "air-gapped"
	cfg["http"].(map[string]any)["listen"] = "127.0.0.1:0"
	cfg["rpc"].(map[string]any)["listen"] = "/ip4/127.0.0.1/tcp/0"
	cfg["rpc"].(map[string]any)["authorizations"] = map[string]any{"ci": map[string]any{"auth_secret_env": secretVar, "allowed_paths": []string{"/api/v0/id"}}}
	cfg["schedule"].(map[string]any)["quarterly"] = quarterlyMarker
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgPath, string(js), 0o644)
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		t.Fatal(err)
	}
	secret := fmt.Sprintf("# the RPC API's CI client\n%s=bearer:%s\n", secretVar, hex.EncodeToString(token))
	writeFile(t, envPath, secret, 0o600)
	for _, l := range b.lines {
		if strings.HasPrefix(l, "test -e ") {
			b.sh(t, l)
		}
	}
	if readFile(t, cfgPath) != string(js) || readFile(t, envPath) != secret {
		t.Fatalf("running the guarded install lines again replaced the edited config or the secrets")
	}
}

func writeFile(t *testing.T, p, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

// service is the daemon started as the installed unit says.
type service struct {
	unit   unitConf
	cmd    *exec.Cmd
	out    *syncBuffer // stdout and stderr, as the journal gets them
	notify <-chan string
	seen   []string // notify messages read so far
	exited chan struct{}
}

// start starts ExecStart as systemd would for this unit.
func (b *box) start(t *testing.T) *service {
	t.Helper()
	u := b.load(t)
	if u.last("Service.Type") != "notify" || u.last("Service.NotifyAccess") != "main" {
		t.Fatalf("Type=%s NotifyAccess=%s: this emulation starts Type=notify units", u.last("Service.Type"), u.last("Service.NotifyAccess"))
	}
	argv := strings.Fields(u.last("Service.ExecStart"))
	if len(argv) == 0 || !strings.HasPrefix(argv[0], "/") {
		t.Fatalf("ExecStart=%s: want an absolute command without prefixes", u.last("Service.ExecStart"))
	}
	for i, a := range argv {
		argv[i] = b.mapWord(a)
	}
	b.confined(t, "ExecStart", argv)
	// The edited config (free loopback ports) must be the one it reads:
	// the defaults would take 8089 and 5001 on the machine running this.
	if i := indexOf(argv, "--config"); i < 0 || i+1 == len(argv) || argv[i+1] != b.path("/etc/ssid-anchor/appliance.json") {
		t.Fatalf("ExecStart=%s does not name --config /etc/ssid-anchor/appliance.json", u.last("Service.ExecStart"))
	}

	sock, msgs := notifySocket(t)
	env := map[string]string{
		// systemd's environment for a system service with User=.
		"PATH":    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME":    b.path("/var/lib/ssid-anchor"),
		"USER":    "ssid-anchor",
		"LOGNAME": "ssid-anchor",
		"SHELL":   "/usr/sbin/nologin",

		"NOTIFY_SOCKET": sock,
	}
	if w := u.last("Service.WatchdogSec"); w != "" {
		env["WATCHDOG_USEC"] = strconv.FormatInt(seconds(t, "WatchdogSec", w).Microseconds(), 10)
	}
	for _, d := range u.list("Service.StateDirectory") {
		env["STATE_DIRECTORY"] = b.path("/var/lib/" + d)
	}
	for _, d := range u.list("Service.ConfigurationDirectory") {
		env["CONFIGURATION_DIRECTORY"] = b.path("/etc/" + d)
	}
	for k, v := range u.environment(t) {
		env[k] = b.mapWord(v)
	}
	for _, f := range u.list("Service.EnvironmentFile") {
		optional := strings.HasPrefix(f, "-")
		p := b.path(strings.TrimPrefix(f, "-"))
		vars, err := readEnvFile(p)
		if err != nil && !(optional && os.IsNotExist(err)) {
			t.Fatalf("EnvironmentFile=%s: %v", f, err)
		}
		for k, v := range vars {
			env[k] = v
		}
	}
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}

	// /proc as the unit mounts it; the process keeps its PID (unshare and
	// sh exec), so MAINPID is cmd.Process.Pid.
	var opts []string
	switch v := u.last("Service.ProcSubset"); v {
	case "pid":
		opts = append(opts, "subset=pid")
	case "", "all":
	default:
		t.Fatalf("ProcSubset=%s: not emulated", v)
	}
	switch v := u.last("Service.ProtectProc"); v {
	case "invisible", "noaccess", "ptraceable":
		opts = append(opts, "hidepid="+v)
	case "", "default":
	default:
		t.Fatalf("ProtectProc=%s: not emulated", v)
	}
	if len(opts) > 0 {
		mount := "mount -t proc -o " + strings.Join(opts, ",") + ` proc /proc && exec "$0" "$@"`
		argv = append([]string{"unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", mount}, argv...)
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/" // a system service's working directory
	cmd.Env = environ
	s := &service{unit: u, cmd: cmd, out: &syncBuffer{}, notify: msgs, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", argv, err)
	}
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			cmd.Process.Kill()
			<-s.exited
		}
	})
	b.svc = s
	return s
}

// readEnvFile reads KEY=VALUE lines (comments and blank lines skipped), the
// plain form of an EnvironmentFile=.
func readEnvFile(p string) (map[string]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not KEY=VALUE", l)
		}
		vars[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return vars, sc.Err()
}

// notifySocket listens where systemd would (NOTIFY_SOCKET).
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 256)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			select {
			case msgs <- string(buf[:n]):
			default: // more than a test reads: drop rather than block
			}
		}
	}()
	return sock, msgs
}

// await reads notify messages until one contains want. The process
// exiting first, or the unit's own timeout passing, fails the test, as
// systemd would fail the unit.
func (s *service) await(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-s.notify:
			s.seen = append(s.seen, m)
			if strings.Contains(m, want) {
				return
			}
		case <-s.exited:
			t.Fatalf("the daemon exited %d before %s (notify: %q):\n%s", s.cmd.ProcessState.ExitCode(), want, s.seen, s.out)
		case <-deadline:
			t.Fatalf("no %s within %v (notify: %q):\n%s", want, timeout, s.seen, s.out)
		}
	}
}

func (s *service) awaitReady(t *testing.T) {
	t.Helper()
	timeout := 90 * time.Second // systemd's DefaultTimeoutStartSec
	if v := s.unit.last("Service.TimeoutStartSec"); v != "" {
		timeout = seconds(t, "TimeoutStartSec", v)
	}
	s.await(t, "READY=1", timeout)
}

// awaitExit waits for a start that fails and returns its exit code.
func (s *service) awaitExit(t *testing.T) int {
	t.Helper()
	timeout := seconds(t, "TimeoutStartSec", s.unit.last("Service.TimeoutStartSec"))
	select {
	case <-s.exited:
	case <-time.After(timeout):
		t.Fatalf("still running after TimeoutStartSec=%v:\n%s", timeout, s.out)
	}
drain:
	for {
		select {
		case m := <-s.notify:
			s.seen = append(s.seen, m)
		default:
			break drain
		}
	}
	return s.cmd.ProcessState.ExitCode()
}

// logLines are the daemon's JSON log lines (--log-format json).
func (s *service) logLines() []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(s.out.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// awaitLog waits for the daemon's JSON log line with msg and returns it.
func (s *service) awaitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		for _, m := range s.logLines() {
			if m["msg"] == msg {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q:\n%s", msg, s.out)
		}
		select {
		case <-s.exited:
			t.Fatalf("the daemon exited %d before logging %q:\n%s", s.cmd.ProcessState.ExitCode(), msg, s.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkRunning: the running daemon is the installed binary, sees /proc as
// the unit mounts it, feeds the unit's watchdog, and serves /metrics
// there.
func (b *box) checkRunning(t *testing.T) {
	t.Helper()
	s := b.svc
	pid := s.cmd.Process.Pid
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != b.path("/usr/local/bin/ssid-anchor") {
		t.Fatalf("MAINPID %d runs %q (%v), not the installed binary", pid, exe, err)
	}
	mi := readFile(t, fmt.Sprintf("/proc/%d/mountinfo", pid))
	procOpts := ""
	for _, l := range strings.Split(mi, "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == "/proc" {
			procOpts = l // the last mount on /proc is the one it sees
		}
	}
	if !strings.Contains(procOpts, "subset=pid") || !strings.Contains(procOpts, "hidepid=invisible") {
		t.Fatalf("the daemon's /proc is not mounted as ProcSubset=pid and ProtectProc=invisible mount it: %q", procOpts)
	}
	httpAddr, _ := s.awaitLog(t, "daemon ready")["http"].(string)
	// Logged once the main loop has read WATCHDOG_USEC, after READY=1.
	watchdog, _ := s.awaitLog(t, "systemd watchdog enabled")["interval"].(float64) // slog: nanoseconds
	if want := seconds(t, "WatchdogSec", s.unit.last("Service.WatchdogSec")); time.Duration(watchdog) != want {
		t.Errorf("the daemon's watchdog interval is %v, the unit's WatchdogSec %v", time.Duration(watchdog), want)
	}
	if httpAddr == "" {
		t.Fatalf("no http address in the daemon's ready line:\n%s", s.out)
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ssid_anchor_build_info{") || !strings.Contains(string(body), "process_resident_memory_bytes ") {
		t.Fatalf("/metrics with /proc limited to process directories: %d\n%.2000s", resp.StatusCode, body)
	}
	// What ProcSubset=pid costs (README, unit comments): the process
	// collector's start time needs /proc/stat.
	t.Logf("/metrics under ProcSubset=pid: 200, process_start_time_seconds present: %v", strings.Contains(string(body), "process_start_time_seconds "))
}

// reload runs ExecReload= with $MAINPID, and the daemon must report
// RELOADING=1 and then READY=1 again.
func (b *box) reload(t *testing.T) {
	t.Helper()
	s := b.svc
	argv := strings.Fields(s.unit.last("Service.ExecReload"))
	for i, a := range argv {
		a = strings.NewReplacer("${MAINPID}", strconv.Itoa(s.cmd.Process.Pid), "$MAINPID", strconv.Itoa(s.cmd.Process.Pid)).Replace(a)
		argv[i] = b.mapWord(a)
	}
	b.confined(t, "ExecReload", argv)
	if len(argv) == 0 {
		t.Fatal("the unit has no ExecReload=")
	}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %v: %v\n%s", argv, err, out)
	}
	s.await(t, "RELOADING=1", time.Minute)
	s.await(t, "READY=1", time.Minute)
}

// stop sends KillSignal= and waits TimeoutStopSec= for exit 0, which
// Restart=on-failure does not restart.
func (b *box) stop(t *testing.T) {
	t.Helper()
	s := b.svc
	sig := map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT}[s.unit.last("Service.KillSignal")]
	if sig == 0 {
		t.Fatalf("KillSignal=%s: not emulated", s.unit.last("Service.KillSignal"))
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	timeout := seconds(t, "TimeoutStopSec", s.unit.last("Service.TimeoutStopSec"))
	select {
	case <-s.exited:
	case <-time.After(timeout):
		t.Fatalf("still running TimeoutStopSec=%v after %v (systemd would SIGKILL it):\n%s", timeout, sig, s.out)
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 || restarts(t, s.unit, code) {
		t.Fatalf("stopped with %v: exit %d, want 0 (no restart):\n%s", sig, code, s.out)
	}
}

// restarts says whether systemd restarts the unit after its main process
// exited with code (Restart=on-failure: any non-zero code that
// RestartPreventExitStatus= does not list).
func restarts(t *testing.T, u unitConf, code int) bool {
	t.Helper()
	if r := u.last("Service.Restart"); r != "on-failure" {
		t.Fatalf("Restart=%s: only on-failure is emulated", r)
	}
	for _, w := range u.list("Service.RestartPreventExitStatus") {
		n, err := strconv.Atoi(w)
		if err != nil {
			t.Fatalf("RestartPreventExitStatus=%s: only exit codes are emulated", w)
		}
		if n == code {
			return false
		}
	}
	return code != 0
}

// systemdSection returns the code blocks of the README's "systemd"
// section, each a list of lines as written (trailing "# comment" removed,
// spaces collapsed).
func systemdSection(t *testing.T) [][]string {
	t.Helper()
	var blocks [][]string
	in, fence := false, false
	sc := bufio.NewScanner(strings.NewReader(readFile(t, "../../README.md")))
	for sc.Scan() {
		l := sc.Text()
		if !fence && strings.HasPrefix(l, "#") {
			in = l == "### systemd"
			continue
		}
		if !in {
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			if fence = !fence; fence {
				blocks = append(blocks, nil)
			}
			continue
		}
		if fence {
			if l = normalise(l); l != "" {
				blocks[len(blocks)-1] = append(blocks[len(blocks)-1], l)
			}
		}
	}
	return blocks
}

func normalise(l string) string {
	if i := strings.Index(l, " #"); i >= 0 {
		l = l[:i]
	}
	return strings.Join(strings.Fields(l), " ")
}

// headerSteps returns the first run of indented command lines ("#   cmd")
// in a file's comments: the install steps at the top of the unit and of
// the drop-in.
func headerSteps(t *testing.T, p string) []string {
	t.Helper()
	var steps []string
	for _, l := range strings.Split(readFile(t, p), "\n") {
		if strings.HasPrefix(l, "#   ") {
			steps = append(steps, normalise(strings.TrimPrefix(l, "#")))
		} else if len(steps) > 0 {
			break
		}
	}
	return steps
}

func newBox(t *testing.T) *box {
	t.Helper()
	checkout, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// The daemon's /proc is mounted in a mount namespace of its own, as
	// systemd does for ProcSubset=: that needs root (as .ci/run runs).
	if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", "mount -t proc -o subset=pid,hidepid=invisible proc /proc && test ! -e /proc/stat").CombinedOutput(); err != nil {
		t.Fatalf("mounting /proc as ProcSubset=pid does (unshare --mount, mount -t proc -o subset=pid) does not work here: %v: %s; run the tests as root (Linux 5.8 or newer)", err, out)
	}
	b := &box{root: t.TempDir(), checkout: checkout, bin: anchorBinary(t)}
	// What the install steps expect of the machine: the system's own
	// directories, and the governance tree (empty: the daemon runs on it).
	for _, d := range []string{"/usr/local/bin", "/etc/systemd/system", "/var/lib", "/srv/ssid"} {
		if err := os.MkdirAll(b.root+d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestSystemdInstall runs the README's systemd section in a scratch root:
// the install steps (which must be the unit's and the drop-in's own),
// then the unit started, reloaded, queried, rated, given the air-gapped
// drop-in and restarted, as the lines say. Then the starts that must not
// restart: with the config missing or wrong, the RPC secret not in the env
// file, or the repo missing, the daemon exits with a code that
// RestartPreventExitStatus= lists and a message naming the problem, which
// is what `systemctl status` shows; with the RPC port taken it exits 1,
// which Restart=on-failure retries.
func TestSystemdInstall(t *testing.T) {
	blocks := systemdSection(t)
	if len(blocks) != 3 {
		t.Fatalf("the README's systemd section has %d code blocks; want 3: install, operate, the air-gapped drop-in", len(blocks))
	}
	if got := headerSteps(t, unitPath); !equal(got, blocks[0]) {
		t.Errorf("the install steps at the top of %s differ from the README's:\nunit:\n  %s\nREADME:\n  %s", unitPath, strings.Join(got, "\n  "), strings.Join(blocks[0], "\n  "))
	}
	if got := headerSteps(t, dropInPath); !equal(got, blocks[2]) {
		t.Errorf("the install steps at the top of %s differ from the README's:\ndrop-in:\n  %s\nREADME:\n  %s", dropInPath, strings.Join(got, "\n  "), strings.Join(blocks[2], "\n  "))
	}
	var lines []string
	seen := map[string]bool{}
	for _, bl := range blocks {
		for _, l := range bl {
			lines = append(lines, l)
			seen[l] = true
			if _, ok := systemdLines[l]; !ok {
				t.Errorf("README systemd line %q has no entry in systemdLines: add what the test does with it", l)
			}
		}
	}
	for l := range systemdLines {
		if !seen[l] {
			t.Errorf("systemdLines has %q, which the README's systemd section no longer shows: remove it", l)
		}
	}
	if t.Failed() {
		return
	}

	b := newBox(t)
	b.lines = lines
	for _, l := range lines {
		c := systemdLines[l]
		if c.skip != "" {
			t.Logf("not run: %s (%s)", l, c.skip)
			continue
		}
		if c.before != nil {
			c.before(t, b)
		}
		out := ""
		if c.run {
			out = b.sh(t, l)
		} else {
			t.Logf("emulated: %s", l)
			c.do(t, b)
		}
		if c.check != nil {
			c.check(t, b, out)
		}
	}
	b.stop(t)

	cfgPath, envPath := b.path("/etc/ssid-anchor/appliance.json"), b.path("/etc/ssid-anchor/env")
	repo := b.path("/var/lib/ssid-anchor/repo")
	goodCfg, goodEnv := readFile(t, cfgPath), readFile(t, envPath)
	port, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T)
		code    int
		says    string
	}{
		{"appliance.json missing", func(t *testing.T) { mustRename(t, cfgPath, cfgPath+".away") }, 2, cfgPath},
		{"appliance.json with a misspelt key", func(t *testing.T) {
			writeFile(t, cfgPath, strings.Replace(goodCfg, `"schedule"`, `"schedlue"`, 1), 0o644)
		}, 2, "schedlue"},
		{"the RPC secret not in the env file", func(t *testing.T) { writeFile(t, envPath, "", 0o600) }, 2, secretVar},
		{"repo not initialised", func(t *testing.T) { mustRename(t, repo, repo+".away") }, 3, "not initialised"},
		{"the RPC port taken", func(t *testing.T) {
			addr := port.Addr().(*net.TCPAddr)
			writeFile(t, cfgPath, strings.Replace(goodCfg, `"/ip4/127.0.0.1/tcp/0"`, fmt.Sprintf(`"/ip4/127.0.0.1/tcp/%d"`, addr.Port), 1), 0o644)
		}, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.breakIt(t)
			defer func() {
				for _, p := range []string{cfgPath, repo} {
					if _, err := os.Stat(p + ".away"); err == nil {
						mustRename(t, p+".away", p)
					}
				}
				writeFile(t, cfgPath, goodCfg, 0o644)
				writeFile(t, envPath, goodEnv, 0o600)
			}()
			s := b.start(t)
			code := s.awaitExit(t)
			out := s.out.String()
			t.Logf("exit %d; systemd restarts it: %v; the daemon said:\n%s", code, restarts(t, s.unit, code), out)
			if code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(out, tc.says) {
				t.Errorf("the daemon's message does not name %q", tc.says)
			}
			for _, m := range s.seen {
				if strings.Contains(m, "READY=1") {
					t.Errorf("it reported READY=1 before failing: %q", s.seen)
				}
			}
			if want := tc.code == 1; restarts(t, s.unit, code) != want {
				t.Errorf("Restart=%s RestartPreventExitStatus=%v: exit %d restarts: %v, want %v", s.unit.last("Service.Restart"), s.unit.list("Service.RestartPreventExitStatus"), code, !want, want)
			}
		})
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}
