package integration

// State across restarts, and the real binary as a process: signals,
// sockets, a kill in the middle of a create, a second server on a busy
// socket, and the config file.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRestartGraceful: plugins, their IDs and their settings survive a
// graceful stop and start on the same root.
func TestRestartGraceful(t *testing.T) {
	root := t.TempDir()
	d := startDaemon(t, root)
	ids := map[string]string{
		"vol":          wireCreate(t, d, "vol", volConfig("/tmp")),
		"args":         wireCreate(t, d, "args", argsConfig),
		"reg.io/x/y:2": wireCreate(t, d, "reg.io/x/y:2", minimalConfig),
	}
	set := func(d *daemon, name, body string) {
		t.Helper()
		r := wireRaw(t, d.sock, "POST", "/plugins/"+name+"/set", map[string]string{"Content-Type": "application/json"}, []byte(body))
		if r.Status != 204 {
			t.Fatalf("set %s %s: %s", name, body, r)
		}
	}
	set(d, "vol", `["DEBUG=7","data.source=/var/tmp"]`)
	set(d, "args", `["flags=-a  -b","null.path=/dev/zero"]`)
	list := func(d *daemon, v string) []byte {
		t.Helper()
		r := wireRaw(t, d.sock, "GET", v+"/plugins", nil, nil)
		if r.Status != 200 {
			t.Fatalf("list: %s", r)
		}
		return r.Body
	}
	// A failing set changes nothing, in memory or on disk.
	if r := wireRaw(t, d.sock, "POST", "/plugins/vol/set", map[string]string{"Content-Type": "application/json"}, []byte(`["DEBUG=5","NOPE=1"]`)); r.Status != 400 {
		t.Errorf("failing set: %s", r)
	}
	before, before41 := list(d, ""), list(d, "/v1.41")
	for _, want := range []string{`"Env":["MODE=volume","DEBUG=7"]`, `"Source":"/var/tmp"`, `"Args":["-a","","-b"]`, `"Path":"/dev/zero"`} {
		if !bytes.Contains(before, []byte(want)) {
			t.Errorf("before restart, list lacks %s", want)
		}
	}
	d.stop()

	d = startDaemon(t, root)
	if diff := cmp.Diff(string(before), string(list(d, ""))); diff != "" {
		t.Errorf("list after restart (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(string(before41), string(list(d, "/v1.41"))); diff != "" {
		t.Errorf("v1.41 list after restart (-before +after):\n%s", diff)
	}
	for name, id := range ids {
		r := wireRaw(t, d.sock, "GET", "/plugins/"+id[:12]+"/json", nil, nil)
		var p struct{ Id, Name string }
		if err := json.Unmarshal(r.Body, &p); err != nil || p.Id != id || !strings.HasPrefix(p.Name, name) {
			t.Errorf("%s after restart: %s", name, r)
		}
	}
	// Changes after a restart persist too, and a removed plugin stays gone.
	set(d, "vol", `["DEBUG=8"]`)
	if r := wireRaw(t, d.sock, "DELETE", "/plugins/args", nil, nil); r.Status != 200 {
		t.Fatalf("remove: %s", r)
	}
	d.stop()
	d = startDaemon(t, root)
	biCheckClean(t, d.sock, filepath.Join(root, "data"), "vol:latest", "reg.io/x/y:2")
	r := wireRaw(t, d.sock, "GET", "/plugins/vol/json", nil, nil)
	if env := wireField(t, wireField(t, r.Body, "Settings"), "Env"); string(env) != `["MODE=volume","DEBUG=8"]` {
		t.Errorf("env after second restart: %s", env)
	}
}

// rsBuffer collects a process's output.
type rsBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *rsBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *rsBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// rsProc is a pluginsd process run from the real binary.
type rsProc struct {
	cmd  *exec.Cmd
	sock string
	out  *rsBuffer
	done chan struct{}
	err  error // from Wait, once done is closed
}

// rsStart runs pluginsdBin with args; sock is the unix socket it serves (for
// rsProc.ready). The process is killed at the end of the test.
func rsStart(t testing.TB, sock string, args ...string) *rsProc {
	t.Helper()
	p := &rsProc{cmd: exec.Command(pluginsdBin, args...), sock: sock, out: &rsBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *rsProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ready waits until the process answers GET /_ping on its socket.
func (p *rsProc) ready(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if p.exited() {
			t.Fatalf("pluginsd exited before serving: %v\n%s", p.err, p.out)
		}
		if r, err := wireRawErr(p.sock, "GET", "/_ping", nil, nil); err == nil && r.Status == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pluginsd not serving on %s after 15s:\n%s", p.sock, p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *rsProc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("pluginsd still running after %v:\n%s", timeout, p.out)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	default:
		t.Fatalf("wait: %v", p.err)
		return -1
	}
}

// term sends SIGTERM and checks for a clean exit within a few seconds.
func (p *rsProc) term(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM:\n%s", code, p.out)
	}
}

func rsFreeTCPPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// rsWriteFile writes a file in a fresh temp dir and returns its path.
func rsWriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// rsTree describes every path under root (type, mode, size, content hash
// for small files) so that two states can be compared.
func rsTree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() && fi.Size() < 1<<20 {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", b)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rsLayout is the temp layout of one real-binary test.
type rsLayout struct {
	dir, sock, data, exec, emptyConfig string
}

func newRSLayout(t testing.TB) rsLayout {
	dir := t.TempDir()
	return rsLayout{
		dir: dir, sock: filepath.Join(dir, "s.sock"), data: filepath.Join(dir, "data"), exec: filepath.Join(dir, "exec"),
		// An explicit empty config file keeps a host's /etc/pluginsd out of the test.
		emptyConfig: rsWriteFile(t, dir, "empty.json", "{}"),
	}
}

func (l rsLayout) args(extra ...string) []string {
	return append([]string{"--host", "unix://" + l.sock, "--data-root", l.data, "--exec-root", l.exec,
		"--group", "", "--config-file", l.emptyConfig}, extra...)
}

func TestRestartRealBinary(t *testing.T) {
	l := newRSLayout(t)
	tcp := "127.0.0.1:" + rsFreeTCPPort(t)
	args := l.args("--host", "tcp://"+tcp)
	p := rsStart(t, l.sock, args...)
	p.ready(t)

	fi, err := os.Lstat(l.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}

	out, err := runDocker(t, "tcp://"+tcp, "plugin", "create", "realbin", pluginDir(t, volConfig("/tmp")))
	if err != nil || out != "realbin" {
		t.Fatalf("docker plugin create over TCP: %v %s\n%s", err, out, p.out)
	}
	out, err = runDocker(t, "unix://"+l.sock, "plugin", "inspect", "-f", "{{.Id}}", "realbin")
	if err != nil {
		t.Fatalf("inspect over unix: %v %s", err, out)
	}
	id := out
	before := rsTree(t, l.data)
	if _, ok := before[filepath.Join("plugins", id, "config.json")]; !ok {
		t.Fatalf("no record for %s under %s", id, l.data)
	}

	p.term(t)
	if diff := cmp.Diff(before, rsTree(t, l.data)); diff != "" {
		t.Errorf("data root changed by SIGTERM (-before +after):\n%s", diff)
	}

	p = rsStart(t, l.sock, args...)
	p.ready(t)
	out, err = runDocker(t, "tcp://"+tcp, "plugin", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}} {{.Enabled}}")
	if err != nil || out != id+" realbin:latest false" {
		t.Errorf("ls after restart: %v %q", err, out)
	}
	p.term(t)
}

// rsSlowCreate is a create whose body is streamed through a pipe: config.json,
// rootfs/ and the first sent bytes of a rootfs/big of total bytes, then
// nothing until finish or abort.
type rsSlowCreate struct {
	tw     *tar.Writer
	pw     *io.PipeWriter
	total  int
	sent   int
	result chan wireResp // the response, or Status 0 and the error in Body
}

func startRSSlowCreate(t testing.TB, sock, name string, total, sent int) *rsSlowCreate {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
	sc := &rsSlowCreate{tw: tar.NewWriter(pw), pw: pw, total: total, sent: sent, result: make(chan wireResp, 1)}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequest("POST", "http://api.moby.localhost/plugins/create?name="+name, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			sc.result <- wireResp{Body: []byte(err.Error())}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sc.result <- wireResp{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}()
	wrote := make(chan error, 1)
	go func() {
		for _, e := range []biEntry{biFile("config.json", []byte(minimalConfig)), biDir("rootfs")} {
			if err := sc.tw.WriteHeader(&e.hdr); err != nil {
				wrote <- err
				return
			}
			if _, err := sc.tw.Write(e.body); err != nil {
				wrote <- err
				return
			}
		}
		if err := sc.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "rootfs/big", Mode: 0o644, Size: int64(total)}); err != nil {
			wrote <- err
			return
		}
		wrote <- sc.write(sent)
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("writing the body: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the server does not read the create body")
	}
	return sc
}

// write sends n more bytes of rootfs/big (incompressible, so that the
// layer being ingested grows too).
func (sc *rsSlowCreate) write(n int) error {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(3, uint64(n)))
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	_, err := sc.tw.Write(b)
	return err
}

// finish sends the rest of the body and returns the response.
func (sc *rsSlowCreate) finish(t testing.TB) wireResp {
	t.Helper()
	if err := sc.write(sc.total - sc.sent); err != nil {
		t.Fatalf("finishing the body: %v", err)
	}
	if err := sc.tw.Close(); err != nil {
		t.Fatal(err)
	}
	sc.pw.Close()
	select {
	case r := <-sc.result:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("no response to the finished create")
		return wireResp{}
	}
}

// rsStaged lists the staging directories of creates in progress.
func rsStaged(data string) []string {
	m, _ := filepath.Glob(filepath.Join(data, "plugins", ".tmp-*"))
	return m
}

// rsIngest returns the number and total size of files in blobs/ingest.
func rsIngest(data string) (n int, size int64) {
	es, _ := os.ReadDir(filepath.Join(data, "blobs", "ingest"))
	for _, e := range es {
		if fi, err := e.Info(); err == nil {
			size += fi.Size()
		}
	}
	return len(es), size
}

// rsWaitMidCreate waits until a create is visibly in progress under data: a
// staging dir whose rootfs/big has at least min bytes, and a non-empty
// ingest file.
func rsWaitMidCreate(t testing.TB, data string, min int64) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var big int64
		for _, s := range rsStaged(data) {
			if fi, err := os.Stat(filepath.Join(s, "rootfs", "big")); err == nil {
				big = fi.Size()
			}
		}
		if _, isz := rsIngest(data); big >= min && isz > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create not visibly in progress: staged %v, big %d bytes, ingest %v", rsStaged(data), big, rsTree(t, filepath.Join(data, "blobs")))
		}
	}
}

func TestRestartKillMidCreate(t *testing.T) {
	l := newRSLayout(t)
	p := rsStart(t, l.sock, l.args()...)
	p.ready(t)

	// A create whose body stops half-way through a large rootfs file.
	sc := startRSSlowCreate(t, l.sock, "killed", 64<<20, 2<<20)
	rsWaitMidCreate(t, l.data, 1<<20)

	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 10*time.Second)
	if len(rsStaged(l.data)) == 0 {
		t.Errorf("no .tmp-* dir after the kill: %v", rsTree(t, filepath.Join(l.data, "plugins")))
	}
	if n, _ := rsIngest(l.data); n == 0 {
		t.Errorf("no ingest file after the kill")
	}
	sc.pw.CloseWithError(errors.New("server killed"))
	select {
	case r := <-sc.result:
		if r.Status != 0 {
			t.Errorf("the interrupted create got a response: %s", r)
		}
	case <-time.After(10 * time.Second):
		t.Error("the interrupted create did not return")
	}

	// Restart on the same root (the killed server's socket file is stale).
	p = rsStart(t, l.sock, l.args()...)
	p.ready(t)
	if r := wireRaw(t, l.sock, "GET", "/plugins", nil, nil); r.Status != 200 || string(r.Body) != "[]\n" {
		t.Errorf("list after restart: %s", r)
	}
	if s := rsStaged(l.data); len(s) != 0 {
		t.Errorf("staging dirs left after restart: %v", s)
	}
	biCheckClean(t, l.sock, l.data)
	r := wireRaw(t, l.sock, "POST", "/plugins/create?name=killed", map[string]string{"Content-Type": "application/x-tar"}, biContext(t, minimalConfig))
	if r.Status != 204 {
		t.Fatalf("create after restart: %s", r)
	}
	biCheckClean(t, l.sock, l.data, "killed:latest")
	p.term(t)
}

func TestRestartSocketInUse(t *testing.T) {
	l := newRSLayout(t)
	p := rsStart(t, l.sock, l.args()...)
	p.ready(t)
	if r := wireRaw(t, l.sock, "POST", "/plugins/create?name=first", map[string]string{"Content-Type": "application/x-tar"}, biContext(t, minimalConfig)); r.Status != 204 {
		t.Fatalf("create: %s", r)
	}

	other := filepath.Join(l.dir, "other")
	q := rsStart(t, l.sock, "--host", "unix://"+l.sock, "--data-root", filepath.Join(other, "data"),
		"--exec-root", filepath.Join(other, "exec"), "--group", "", "--config-file", l.emptyConfig)
	if code := q.wait(t, 10*time.Second); code != 1 {
		t.Errorf("second server: exit code %d, want 1:\n%s", code, q.out)
	}
	if out := q.out.String(); !strings.Contains(out, l.sock) || !strings.Contains(out, "in use") {
		t.Errorf("second server's error does not name the busy socket: %q", out)
	}

	// The first one is untouched and still serving on the same socket file.
	if p.exited() {
		t.Fatalf("first server exited: %v\n%s", p.err, p.out)
	}
	if fi, err := os.Lstat(l.sock); err != nil || fi.Mode()&fs.ModeSocket == 0 {
		t.Fatalf("socket file gone: %v %v", fi, err)
	}
	if r := wireRaw(t, l.sock, "GET", "/plugins/first/json", nil, nil); r.Status != 200 {
		t.Errorf("first server after the second's attempt: %s", r)
	}

	// A path holding something other than a socket is not replaced.
	file := rsWriteFile(t, l.dir, "file.sock", "not a socket")
	q = rsStart(t, file, "--host", "unix://"+file, "--data-root", filepath.Join(other, "data"),
		"--exec-root", filepath.Join(other, "exec"), "--group", "", "--config-file", l.emptyConfig)
	if code := q.wait(t, 10*time.Second); code != 1 || !strings.Contains(q.out.String(), "not a socket") {
		t.Errorf("server on a regular file: exit %d:\n%s", code, q.out)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "not a socket" {
		t.Errorf("the regular file was replaced: %q %v", b, err)
	}
	p.term(t)
}

func TestRestartConfigFile(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "c.sock")
	data := filepath.Join(dir, "from-file")
	cfg := rsWriteFile(t, dir, "ok.json", fmt.Sprintf(`{"data-root": %q, "log-level": "warn"}`, data))
	p := rsStart(t, sock, "--host", "unix://"+sock, "--group", "", "--config-file", cfg)
	p.ready(t)
	// The file's data-root is in use (created at start-up) before anything
	// is written through the API.
	if _, err := os.Stat(filepath.Join(data, "plugins")); err != nil {
		t.Fatalf("the config file's data-root was not used: %v", err)
	}
	r := wireRaw(t, sock, "POST", "/plugins/create?name=cfg", map[string]string{"Content-Type": "application/x-tar"}, biContext(t, minimalConfig))
	if r.Status != 204 {
		t.Fatalf("create: %s", r)
	}
	r = wireRaw(t, sock, "GET", "/plugins/cfg/json", nil, nil)
	var pl struct{ Id string }
	if err := json.Unmarshal(r.Body, &pl); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "plugins", pl.Id, "config.json")); err != nil {
		t.Errorf("the plugin is not under the config file's data-root: %v", err)
	}
	p.term(t)

	// Refusals: exit 1 before listening, with a message naming the problem.
	// Every case names a temp socket and data root so that a server that
	// wrongly starts touches nothing of the host.
	for _, tc := range []struct {
		what, config string
		flags        []string
		want         []string
	}{
		{"data-root as a flag and in the file", fmt.Sprintf(`{"data-root": %q}`, filepath.Join(dir, "a")),
			[]string{"--data-root", filepath.Join(dir, "b")}, []string{"data-root", "both as a flag and in the file"}},
		{"hosts as a flag and in the file", fmt.Sprintf(`{"hosts": [%q]}`, "unix://"+filepath.Join(dir, "h.sock")),
			[]string{"--data-root", filepath.Join(dir, "b")}, []string{"hosts", "both as a flag and in the file"}},
		{"unknown key", `{"nosuch": 1}`, []string{"--data-root", filepath.Join(dir, "b")}, []string{`unknown setting "nosuch"`}},
		{"not JSON", `data-root=/x`, []string{"--data-root", filepath.Join(dir, "b")}, []string{"config file"}},
		{"wrong type", `{"log-level": 5}`, []string{"--data-root", filepath.Join(dir, "b")}, []string{"config file", "log-level"}},
	} {
		cfg := rsWriteFile(t, dir, "bad.json", tc.config)
		csock := filepath.Join(dir, "refused.sock")
		args := append([]string{"--host", "unix://" + csock, "--group", "", "--config-file", cfg}, tc.flags...)
		q := rsStart(t, csock, args...)
		code := q.wait(t, 10*time.Second)
		if code != 1 {
			t.Errorf("%s: exit code %d, want 1:\n%s", tc.what, code, q.out)
		}
		for _, w := range tc.want {
			if !strings.Contains(q.out.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.what, w, q.out)
			}
		}
		if _, err := os.Lstat(csock); err == nil {
			t.Errorf("%s: the refused server created its socket", tc.what)
		}
	}
	// An explicit config file that does not exist is an error too.
	q := rsStart(t, sock, "--host", "unix://"+sock, "--data-root", filepath.Join(dir, "b"), "--config-file", filepath.Join(dir, "nosuch.json"))
	if code := q.wait(t, 10*time.Second); code != 1 || !strings.Contains(q.out.String(), "nosuch.json") {
		t.Errorf("missing config file: exit %d:\n%s", code, q.out)
	}
}

// TestRestartDataRootInUse: a second server on a data root another one is
// using must not start: its start-up clean-up would delete the first one's
// creates in progress, and its GC the blobs the first one is about to
// reference.
func TestRestartDataRootInUse(t *testing.T) {
	l := newRSLayout(t)
	p := rsStart(t, l.sock, l.args()...)
	p.ready(t)
	sc := startRSSlowCreate(t, l.sock, "inflight", 4<<20, 1<<20)
	rsWaitMidCreate(t, l.data, 1<<19)

	sockB := filepath.Join(l.dir, "b.sock")
	q := rsStart(t, sockB, "--host", "unix://"+sockB, "--data-root", l.data, "--exec-root", filepath.Join(l.dir, "execB"),
		"--group", "", "--config-file", l.emptyConfig)
	started := false
	for deadline := time.Now().Add(10 * time.Second); !q.exited(); time.Sleep(10 * time.Millisecond) {
		if r, err := wireRawErr(sockB, "GET", "/_ping", nil, nil); err == nil && r.Status == 200 {
			started = true
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second server neither serving nor exited:\n%s", q.out)
		}
	}
	if started {
		// Without the data-root lock, the second server's start-up would
		// delete the first one's staging dir and ingest file mid-create.
		t.Errorf("a second server started on data root %s, which another server is using:\n%s", l.data, q.out)
		q.cmd.Process.Kill()
		q.wait(t, 10*time.Second)
	} else if code := q.wait(t, time.Second); code != 1 || !strings.Contains(q.out.String(), l.data) {
		t.Errorf("second server: exit %d, want 1 with a message naming %s:\n%s", code, l.data, q.out)
	}

	// The first server's create in progress is unharmed.
	if r := sc.finish(t); r.Status != 204 {
		t.Errorf("the first server's create: %s", r)
	}
	biCheckClean(t, l.sock, l.data, "inflight:latest")
	p.term(t)
}

// TestRestartUnreadableRecord: one damaged plugin record does not keep the
// server down or harm the other plugins.
func TestRestartUnreadableRecord(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	d := startDaemon(t, root)
	bad := wireCreate(t, d, "torn", minimalConfig)
	wireCreate(t, d, "good", volConfig("/tmp"))
	victim := wireCreate(t, d, "victim", argsConfig)
	b, err := os.ReadFile(filepath.Join(data, "plugins", victim, "config.json"))
	var victimRec biRecord
	if err != nil || json.Unmarshal(b, &victimRec) != nil {
		t.Fatalf("victim record: %v", err)
	}
	d.stop()
	if err := os.WriteFile(filepath.Join(data, "plugins", bad, "config.json"), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(data, "plugins", "not-a-plugin"), 0o700); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, root)
	r := wireRaw(t, d.sock, "GET", "/plugins", nil, nil)
	var ps []struct{ Name string }
	if err := json.Unmarshal(r.Body, &ps); err != nil || len(ps) != 2 || ps[0].Name != "good:latest" {
		t.Errorf("list with a damaged record: %s", r)
	}
	wireWantError(t, wireRaw(t, d.sock, "GET", "/plugins/torn/json", nil, nil), 404, `plugin "torn" not found`)
	// The good plugin keeps its blobs through the start-up GC and still
	// works; the damaged one is left on disk for inspection.
	var rec biRecord
	goodRaw := wireRaw(t, d.sock, "GET", "/plugins/good/json", nil, nil)
	var good struct{ Id string }
	_ = json.Unmarshal(goodRaw.Body, &good)
	b, err = os.ReadFile(filepath.Join(data, "plugins", good.Id, "config.json"))
	if err != nil || json.Unmarshal(b, &rec) != nil {
		t.Fatalf("good record: %v", err)
	}
	// Removing a plugin kicks a GC pass; once its layer is gone, a pass has
	// run after start-up.
	if r := wireRaw(t, d.sock, "DELETE", "/plugins/victim", nil, nil); r.Status != 200 {
		t.Fatalf("remove victim: %s", r)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := os.Stat(filepath.Join(data, "blobs", "sha256", strings.TrimPrefix(victimRec.Blobsums[0], "sha256:")))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no GC pass within 3s of a remove")
		}
	}
	for _, dg := range append([]string{rec.Config, rec.Manifest}, rec.Blobsums...) {
		if _, err := os.Stat(filepath.Join(data, "blobs", "sha256", strings.TrimPrefix(dg, "sha256:"))); err != nil {
			t.Errorf("blob %s of the good plugin: %v", dg, err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "plugins", bad, "config.json")); err != nil {
		t.Errorf("the damaged record was deleted: %v", err)
	}
	if r := wireRaw(t, d.sock, "POST", "/plugins/good/set", map[string]string{"Content-Type": "application/json"}, []byte(`["DEBUG=1"]`)); r.Status != 204 {
		t.Errorf("set on the good plugin: %s", r)
	}
	// The name of the unreadable plugin is free again.
	if r := wireRaw(t, d.sock, "POST", "/plugins/create?name=torn", map[string]string{"Content-Type": "application/x-tar"}, biContext(t, minimalConfig)); r.Status != 204 {
		t.Errorf("re-create torn: %s", r)
	}
}
