package integration

// The authorization chain with real AuthZ plugins: the test plugin in authz
// mode (testplugin/authz.go), created and enabled with the stock CLI, run
// by runc, and put in the chain of a server restarted with it, as
// --authorization-plugin does for the real binary.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pluginsd/pluginsd/manager"
	"github.com/pluginsd/pluginsd/server"
	"github.com/pluginsd/pluginsd/server/authz"
)

// azConfig is an AuthZ plugin running the test plugin in authz mode; what
// it denies is settable.
const azConfig = `{
  "description": "test authz plugin",
  "entrypoint": ["/testplugin"],
  "env": [{"name": "MODE", "value": "authz"},
          {"name": "DENY_URI", "settable": ["value"], "value": ""},
          {"name": "DENY_BODY", "settable": ["value"], "value": ""},
          {"name": "DENY_RES_URI", "settable": ["value"], "value": ""}],
  "interface": {"socket": "tp.sock", "types": ["docker.authz/1.0"]},
  "network": {"type": "none"}
}`

// azCall is one call the plugin recorded (testplugin/authz.go authzCall).
type azCall struct {
	Phase           string
	Time            int64
	Method          string
	URI             string
	BodyLen         int
	Body            string
	Status          int
	User            string
	UserAuthNMethod string
	PeerCerts       int
	Headers         map[string]string
	ResponseBodyLen int
	Allow           bool
	Accept          string
	ContentType     string
}

// azPlugin is an AuthZ plugin to create: its name and what it denies
// (settings of azConfig, e.g. "DENY_URI=secret").
type azPlugin struct {
	name     string
	settings []string
}

// azSetup creates and enables the plugins on a fresh root with a plain
// daemon (no chain yet), stops that daemon leaving them running, and
// starts the daemon of the test on the same root with chain as its
// --authorization-plugin list. more, if given, runs on the plain daemon
// first (for plugins the test needs beside the chain).
func azSetup(t *testing.T, plugins []azPlugin, chain []string, opts azOptions, more func(d *daemon)) *daemon {
	t.Helper()
	root := t.TempDir()
	d := startDaemonWith(t, root, true)
	for _, p := range plugins {
		d.mustDocker("plugin", "create", p.name, pluginDir(t, azConfig))
		if len(p.settings) > 0 {
			d.mustDocker(append([]string{"plugin", "set", p.name}, p.settings...)...)
		}
		d.mustDocker("plugin", "enable", p.name)
	}
	if more != nil {
		more(d)
	}
	d.stop() // live-restore: the plugins keep running and are adopted
	return startAuthzDaemon(t, root, chain, opts)
}

// azOptions are the extras of startAuthzDaemon.
type azOptions struct {
	tls *tls.Config // for the TCP listener
}

// startAuthzDaemon is startDaemon with an authorization chain, wired as
// cmd/pluginsd wires it: the manager protects the chain's plugins, restores
// them, the chain waits until they run, and the server authorizes every
// routed request through them. It stops plugins at the end (no
// live-restore).
func startAuthzDaemon(t *testing.T, root string, chain []string, o azOptions) *daemon {
	t.Helper()
	return startDaemonOpts(t, root, daemonOptions{
		tcp:     o.tls,
		manager: func(c *manager.Config) { c.Protected = manager.ProtectAuthz(chain) },
		server: func(mgr *manager.Manager, c *server.Config) {
			src := authz.SourceFunc(mgr.AuthzPlugin)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			full, err := authz.WaitReady(ctx, src, chain)
			if err != nil {
				t.Fatal(err)
			}
			mw, err := authz.Config{Plugins: full}.ToMiddleware(src)
			if err != nil {
				t.Fatal(err)
			}
			c.Authorization = mw
		},
	})
}

// azID is a plugin's ID, asked of the manager directly (a request through
// the API would itself be authorized and logged by the plugins).
func azID(t *testing.T, d *daemon, name string) string {
	t.Helper()
	p, err := d.mgr.Inspect(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return p.ID()
}

// azCalls returns the calls plugin name received whose URI contains uri.
func azCalls(t *testing.T, d *daemon, name, uri string) []azCall {
	t.Helper()
	var all []azCall
	pluginCall(t, filepath.Join(d.sockets, azID(t, d, name), "tp.sock"), "Calls", &all)
	var out []azCall
	for _, c := range all {
		if strings.Contains(c.URI, uri) {
			out = append(out, c)
		}
	}
	return out
}

// azDo sends one request to the daemon's unix socket and returns the
// status and body.
func azDo(t *testing.T, d *daemon, method, target, ctype string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://pluginsd"+target, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := d.httpClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// hiddenLength hides a reader's length: the request goes out chunked.
type hiddenLength struct{ io.Reader }

// TestAuthzAllowDeny: allowed requests pass both phases; a deny by URI or
// by body content reaches the stock CLI with dockerd's message; AuthZRes
// gets the real status of an error.
func TestAuthzAllowDeny(t *testing.T) {
	d := azSetup(t, []azPlugin{{"az", []string{"DENY_URI=secret", "DENY_BODY=evil"}}}, []string{"az"}, azOptions{},
		func(d *daemon) { d.mustDocker("plugin", "create", "vol", pluginDir(t, volConfig("/tmp"))) })

	// Allowed, through the stock CLI.
	if out := d.mustDocker("plugin", "ls", "--format", "{{.Name}} {{.Enabled}}"); !strings.Contains(out, "az:latest true") || !strings.Contains(out, "vol:latest false") {
		t.Errorf("plugin ls: %q", out)
	}
	calls := azCalls(t, d, "az", "/plugins")
	if len(calls) != 2 || calls[0].Phase != "AuthZReq" || calls[1].Phase != "AuthZRes" || calls[1].Status != 200 ||
		calls[0].Method != http.MethodGet || !strings.HasPrefix(calls[0].URI, "/v1.") || calls[1].ResponseBodyLen == 0 {
		t.Errorf("plugin ls: calls %+v", calls)
	}
	for _, c := range calls {
		if c.Accept != "application/vnd.docker.plugins.v1.2+json" || c.ContentType != "" || c.User != "" {
			t.Errorf("RPC: Accept %q Content-Type %q User %q", c.Accept, c.ContentType, c.User)
		}
	}

	// Denied by URI: the CLI shows dockerd's message.
	out, err := d.docker("plugin", "inspect", "secret")
	if err == nil || !strings.Contains(out, `authorization denied by plugin az:latest: request URI contains "secret"`) {
		t.Errorf("inspect secret: err=%v out=%q", err, out)
	}
	if calls := azCalls(t, d, "az", "secret"); len(calls) != 1 || calls[0].Allow {
		t.Errorf("denied request: calls %+v (no AuthZRes after a deny)", calls)
	}

	// Denied by body content: the JSON body of set.
	out, err = d.docker("plugin", "set", "vol", "DEBUG=evil")
	if err == nil || !strings.Contains(out, `authorization denied by plugin az:latest: request body contains "evil"`) {
		t.Errorf("set DEBUG=evil: err=%v out=%q", err, out)
	}
	if out := d.mustDocker("plugin", "inspect", "-f", "{{.Settings.Env}}", "vol"); strings.Contains(out, "evil") {
		t.Errorf("a denied set changed the plugin: %s", out)
	}
	d.mustDocker("plugin", "set", "vol", "DEBUG=good")
	if calls := azCalls(t, d, "az", "/plugins/vol/set"); len(calls) != 3 || strings.TrimSpace(calls[1].Body) != `["DEBUG=good"]` || calls[2].Status != 204 {
		t.Errorf("set: calls %+v", calls)
	}

	// AuthZRes gets the real status of an error (dockerd sends 0).
	if status, _ := azDo(t, d, http.MethodGet, "/v1.41/plugins/nosuch/json", "", nil); status != 404 {
		t.Errorf("inspect nosuch: %d", status)
	}
	calls = azCalls(t, d, "az", "/v1.41/plugins/nosuch/json")
	if len(calls) != 2 || calls[1].Status != 404 || calls[1].ResponseBodyLen == 0 {
		t.Errorf("AuthZRes of a 404: %+v", calls)
	}

	// A create is authorized; its tar is not forwarded.
	d.mustDocker("plugin", "create", "made", pluginDir(t, volConfig("/tmp")))
	if calls := azCalls(t, d, "az", "/plugins/create?name=made"); len(calls) != 2 || calls[0].BodyLen != 0 || calls[1].Status != 204 {
		t.Errorf("create: calls %+v", calls)
	}
}

// TestAuthzChain: plugins are asked in chain order in both phases; the
// first deny wins and later plugins never hear of the request; a
// response-phase deny replaces the handler's answer.
func TestAuthzChain(t *testing.T) {
	d := azSetup(t, []azPlugin{
		{"az-a", []string{"DENY_URI=alpha"}},
		{"az-b", []string{"DENY_URI=beta", "DENY_RES_URI=gamma"}},
	}, []string{"az-a", "az-b:latest", "az-a"}, azOptions{}, nil)

	if status, body := azDo(t, d, http.MethodGet, "/v1.41/plugins?ok=1", "", nil); status != 200 {
		t.Fatalf("allowed: %d %s", status, body)
	}
	a, b := azCalls(t, d, "az-a", "ok=1"), azCalls(t, d, "az-b", "ok=1")
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("calls: a %+v b %+v (the repeated name must be asked once)", a, b)
	}
	inOrder := a[0].Time < b[0].Time && b[0].Time < a[1].Time && a[1].Time < b[1].Time
	if !inOrder || a[0].Phase != "AuthZReq" || b[1].Phase != "AuthZRes" {
		t.Errorf("order: want a.Req < b.Req < a.Res < b.Res: a %+v b %+v", a, b)
	}

	status, body := azDo(t, d, http.MethodGet, "/v1.41/plugins?beta=1", "", nil)
	if status != 403 || !strings.Contains(body, `authorization denied by plugin az-b:latest: request URI contains \"beta\"`) {
		t.Errorf("denied by the second: %d %s", status, body)
	}
	if a, b := azCalls(t, d, "az-a", "beta"), azCalls(t, d, "az-b", "beta"); len(a) != 1 || len(b) != 1 {
		t.Errorf("denied by the second: a %+v b %+v", a, b)
	}

	status, body = azDo(t, d, http.MethodGet, "/v1.41/plugins?alpha=1&beta=1", "", nil)
	if status != 403 || !strings.Contains(body, "plugin az-a:latest") {
		t.Errorf("denied by both: %d %s (the first must answer)", status, body)
	}
	if b := azCalls(t, d, "az-b", "alpha"); len(b) != 0 {
		t.Errorf("the second plugin heard of a request the first denied: %+v", b)
	}

	// Response phase: the handler ran (a 404 here), the client gets the 403.
	status, body = azDo(t, d, http.MethodGet, "/v1.41/plugins/gamma/json", "", nil)
	if status != 403 || !strings.Contains(body, `authorization denied by plugin az-b:latest: response to a URI containing \"gamma\"`) {
		t.Errorf("response-phase deny: %d %s", status, body)
	}
	if a := azCalls(t, d, "az-a", "gamma"); len(a) != 2 || a[1].Status != 404 {
		t.Errorf("response-phase deny: a %+v", a)
	}
}

// TestCaseB24AuthzBodyBypass: no body bypass (public case B24,
// CVE-2026-34040). A JSON body reaches the plugins whatever its size up to
// 4 MiB and whatever its framing; one over 4 MiB is refused before the
// handler. (B24's inputs are container creates; here the same bodies go to
// plugin set, the JSON endpoint pluginsd has.)
func TestCaseB24AuthzBodyBypass(t *testing.T) {
	d := azSetup(t, []azPlugin{{"az", []string{"DENY_BODY=evil"}}}, []string{"az"}, azOptions{},
		func(d *daemon) { d.mustDocker("plugin", "create", "vol", pluginDir(t, volConfig("/tmp"))) })

	// a1: a small body with a Content-Length is denied on its content.
	status, body := azDo(t, d, http.MethodPost, "/v1.41/plugins/vol/set?small=1", "application/json", strings.NewReader(`["DEBUG=evil"]`))
	if status != 403 || !strings.Contains(body, "request body contains") {
		t.Errorf("small evil body: %d %s", status, body)
	}

	// a3: a small body, chunked, is forwarded and denied on its content.
	status, body = azDo(t, d, http.MethodPost, "/v1.41/plugins/vol/set?chunked=1", "application/json", hiddenLength{strings.NewReader(`["DEBUG=evil"]`)})
	if status != 403 || !strings.Contains(body, "request body contains") {
		t.Errorf("chunked evil body: %d %s", status, body)
	}
	calls := azCalls(t, d, "az", "chunked=1")
	if len(calls) != 1 || calls[0].BodyLen != 14 || calls[0].Headers["Content-Length"] != "" {
		t.Errorf("chunked body: calls %+v", calls)
	}
	status, body = azDo(t, d, http.MethodPost, "/v1.41/plugins/vol/set?chunked=2", "application/json", hiddenLength{strings.NewReader(`["DEBUG=3"]`)})
	if status != 204 {
		t.Errorf("chunked good body: %d %s", status, body)
	}

	// a2: a body past dockerd's 1 MiB is still forwarded whole.
	padded := `["DEBUG=evil","` + strings.Repeat("x", 1_100_000) + `"]`
	status, body = azDo(t, d, http.MethodPost, "/v1.41/plugins/vol/set?big=1", "application/json", strings.NewReader(padded))
	if status != 403 || !strings.Contains(body, "request body contains") {
		t.Errorf("1.1 MB evil body: %d %s", status, body)
	}
	if calls := azCalls(t, d, "az", "big=1"); len(calls) != 1 || calls[0].BodyLen != len(padded) {
		t.Errorf("1.1 MB body: forwarded %+v", calls)
	}

	// Over 4 MiB: 413 before any plugin or the handler. Enable ignores its
	// body, so a handler that ran would have enabled the plugin.
	huge := `{"pad":"` + strings.Repeat("x", 5<<20) + `"}`
	for _, r := range []io.Reader{strings.NewReader(huge), hiddenLength{strings.NewReader(huge)}} {
		status, body = azDo(t, d, http.MethodPost, "/v1.41/plugins/vol/enable?huge=1", "application/json", r)
		if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "more than 4194304 bytes") {
			t.Errorf("5 MiB body: %d %s", status, body)
		}
	}
	if calls := azCalls(t, d, "az", "huge=1"); len(calls) != 0 {
		t.Errorf("a 5 MiB body reached the plugin: %+v", calls)
	}
	if p, err := d.mgr.Inspect(t.Context(), "vol"); err != nil || p.Plugin.Enabled {
		t.Errorf("the handler ran for a refused body (enabled=%v, %v)", p != nil && p.Plugin.Enabled, err)
	}
}

// TestCaseB25AuthzDisable: a plugin in the chain cannot be disabled or
// removed through the API (public case B25: dockerd drops it from the
// chain and lets everything through, and enabling it again does not put it
// back): authorization never turns off silently, and the refusal says why.
func TestCaseB25AuthzDisable(t *testing.T) {
	d := azSetup(t, []azPlugin{{"az", []string{"DENY_URI=secret"}}, {"other", nil}}, []string{"az"}, azOptions{}, nil)
	for _, args := range [][]string{{"plugin", "disable", "az"}, {"plugin", "disable", "--force", "az"}, {"plugin", "rm", "--force", "az"}} {
		out, err := d.docker(args...)
		if err == nil || !strings.Contains(out, "plugin az:latest is in the authorization chain (--authorization-plugin); remove it from the configuration first") {
			t.Errorf("docker %s: err=%v out=%q", strings.Join(args, " "), err, out)
		}
	}
	if status, _ := azDo(t, d, http.MethodPost, "/v1.41/plugins/az/disable", "", nil); status != http.StatusConflict {
		t.Errorf("disable: %d, want 409", status)
	}
	if out := d.mustDocker("plugin", "inspect", "-f", "{{.Enabled}}", "az"); out != "true" {
		t.Errorf("enabled = %s", out)
	}
	// Still enforcing.
	if out, err := d.docker("plugin", "inspect", "secret"); err == nil || !strings.Contains(out, "authorization denied by plugin az:latest") {
		t.Errorf("after the refusals: err=%v out=%q", err, out)
	}
	// A plugin outside the chain is unaffected.
	d.mustDocker("plugin", "disable", "other")
	d.mustDocker("plugin", "rm", "other")
}

// TestAuthzCrash: while a chain plugin is down, requests fail closed with
// 503; once the supervisor has restarted it, they pass (and it denies
// again).
func TestAuthzCrash(t *testing.T) {
	d := azSetup(t, []azPlugin{{"az", []string{"DENY_URI=secret"}}}, []string{"az"}, azOptions{}, nil)
	id := azID(t, d, "az")
	pid := pluginPid(t, d, id)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := azDo(t, d, http.MethodGet, "/v1.41/plugins", "", nil)
		seen[status]++
		if status == 200 {
			break
		}
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "authorization plugin az") {
			t.Fatalf("while the plugin is down: %d %s", status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not restarted within 30 s: %v", seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("statuses until the plugin was back: %v", seen)
	if seen[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 seen while the plugin was down: %v", seen)
	}
	if p := pluginPid(t, d, id); p == pid {
		t.Errorf("same pid %d after the kill", p)
	}
	if status, _ := azDo(t, d, http.MethodGet, "/v1.41/plugins/secret/json", "", nil); status != 403 {
		t.Errorf("after the restart, deny: %d", status)
	}
}

// TestAuthzTLSUser: with --tlsverify, the common name of the client's
// verified certificate is the User the plugins see, and the stock CLI
// works over TLS.
func TestAuthzTLSUser(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	tc, err := server.TLSOptions{Verify: true, CACert: pki.caFile, Cert: pki.serverCert, Key: pki.serverKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	d := azSetup(t, []azPlugin{{"az", nil}}, []string{"az"}, azOptions{tls: tc}, nil)

	tlsArgs := []string{"--tlsverify", "--tlscacert", pki.caFile, "--tlscert", pki.clientCert, "--tlskey", pki.clientKey}
	out, err := runDocker(t, "tcp://"+d.tcpAddr, append(tlsArgs, "plugin", "ls", "--filter", "enabled=true", "--format", "{{.Name}}")...)
	if err != nil || out != "az:latest" {
		t.Fatalf("plugin ls over TLS: %v %q", err, out)
	}
	calls := azCalls(t, d, "az", "enabled")
	if len(calls) != 2 {
		t.Fatalf("calls: %+v", calls)
	}
	for _, c := range calls {
		if c.User != "alice" || c.UserAuthNMethod != "TLS" || c.PeerCerts != 1 {
			t.Errorf("%s: User %q method %q certs %d", c.Phase, c.User, c.UserAuthNMethod, c.PeerCerts)
		}
	}
	// Without a client certificate there is no connection at all.
	out, err = runDocker(t, "tcp://"+d.tcpAddr, "--tls", "--tlscacert", pki.caFile, "plugin", "ls")
	if err == nil {
		t.Errorf("plugin ls without a client certificate: %q", out)
	}
	// The unix socket names no user.
	azDo(t, d, http.MethodGet, "/v1.41/plugins?unix=1", "", nil)
	if calls := azCalls(t, d, "az", "unix=1"); len(calls) != 2 || calls[0].User != "" || calls[0].UserAuthNMethod != "" {
		t.Errorf("unix socket: %+v", calls)
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate for "alice", as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pluginsd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(cn+"-cert.pem", "CERTIFICATE", der), write(cn+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p := testPKI{caFile: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue(2, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientCert, p.clientKey = issue(3, "alice", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// TestAuthzRealBinary: bin/pluginsd with --authorization-plugin. It
// refuses to start (exit 1, saying why) when a chain plugin is missing,
// disabled or not an AuthZ plugin; it starts with an enabled one, restored
// and waited for, and denies through the stock CLI. Plain TCP outside
// loopback is refused without --insecure-tcp.
func TestAuthzRealBinary(t *testing.T) {
	root := t.TempDir()
	d := startDaemon(t, root)
	d.mustDocker("plugin", "create", "az", pluginDir(t, azConfig))
	d.mustDocker("plugin", "set", "az", "DENY_URI=secret")
	d.mustDocker("plugin", "create", "off", pluginDir(t, azConfig))
	d.mustDocker("plugin", "create", "vol", pluginDir(t, volConfig("/tmp")))
	d.mustDocker("plugin", "enable", "az")
	d.mustDocker("plugin", "enable", "vol")
	d.stop() // without live-restore: the binary starts them again

	sockets := shortSocketRoot(t, filepath.Join(root, "sockets"))
	empty := rsWriteFile(t, root, "empty.json", "{}")
	sock := filepath.Join(root, "bin.sock")
	withConfig := func(config string, extra ...string) []string {
		return append([]string{"--host", "unix://" + sock, "--data-root", filepath.Join(root, "data"),
			"--exec-root", filepath.Join(root, "exec"), "--plugin-exec-root", sockets,
			"--group", "", "--config-file", config, "--live-restore=false"}, extra...)
	}
	args := func(extra ...string) []string { return withConfig(empty, extra...) }
	fromFile := rsWriteFile(t, root, "authz.json", `{"authorization-plugins": ["az", "gone:1.0"]}`)
	for _, tc := range []struct {
		what string
		args []string
		want string
	}{
		{"missing", args("--authorization-plugin", "az", "--authorization-plugin", "nosuch"), `--authorization-plugin: authorization plugin nosuch: plugin "nosuch" not found`},
		{"missing, from the config file", withConfig(fromFile), `--authorization-plugin: authorization plugin gone:1.0: plugin "gone:1.0" not found`},
		{"disabled", args("--authorization-plugin", "off"), "--authorization-plugin: authorization plugin off: plugin off:latest is not enabled"},
		{"not authz", args("--authorization-plugin", "vol:latest"), "plugin vol:latest does not implement the authz interface"},
		{"tlsverify without files", args("--tlsverify"), "--tls and --tlsverify need --tlscert and --tlskey"},
		{"plain tcp outside loopback", args("--host", "tcp://0.0.0.0:"+rsFreeTCPPort(t)), "refusing to serve tcp://0.0.0.0:"},
	} {
		p := rsStart(t, sock, tc.args...)
		if code := p.wait(t, 90*time.Second); code != 1 || !strings.Contains(p.out.String(), tc.want) {
			t.Errorf("%s: exit %d, want 1 with %q:\n%s", tc.what, code, tc.want, p.out)
		}
		if _, err := os.Lstat(sock); err == nil {
			t.Errorf("%s: the refused server created its socket", tc.what)
		}
	}

	tcp := "0.0.0.0:" + rsFreeTCPPort(t)
	p := rsStart(t, sock, args("--authorization-plugin", "az", "--host", "tcp://"+tcp, "--insecure-tcp")...)
	p.ready(t)
	if out, err := runDocker(t, "unix://"+sock, "plugin", "ls", "--format", "{{.Name}}"); err != nil || !strings.Contains(out, "az:latest") {
		t.Errorf("plugin ls: %v %q", err, out)
	}
	out, err := runDocker(t, "tcp://"+strings.Replace(tcp, "0.0.0.0", "127.0.0.1", 1), "plugin", "inspect", "secret")
	if err == nil || !strings.Contains(out, `authorization denied by plugin az:latest: request URI contains "secret"`) {
		t.Errorf("inspect secret: %v %q", err, out)
	}
	out, err = runDocker(t, "unix://"+sock, "plugin", "disable", "az")
	if err == nil || !strings.Contains(out, "authorization chain") {
		t.Errorf("disable az: %v %q", err, out)
	}
	p.term(t)
}

// TestAuthzNoBypassBetweenRequests checks that authorization does not
// depend on connection reuse: several requests on one keep-alive
// connection are each authorized.
func TestAuthzNoBypassBetweenRequests(t *testing.T) {
	d := azSetup(t, []azPlugin{{"az", []string{"DENY_URI=secret"}}}, []string{"az"}, azOptions{}, nil)
	conn, err := net.Dial("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var req bytes.Buffer
	for i, target := range []string{"/v1.41/_ping?i=0", "/v1.41/plugins/secret/json?i=1", "/v1.41/_ping?i=2"} {
		fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: x\r\n", target)
		if i == 2 {
			req.WriteString("Connection: close\r\n")
		}
		req.WriteString("\r\n")
	}
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	all, _ := io.ReadAll(conn)
	if n := strings.Count(string(all), "HTTP/1.1 403"); n != 1 || strings.Count(string(all), "HTTP/1.1 200") != 2 {
		t.Errorf("pipelined requests: %d denials in:\n%s", n, all)
	}
	for _, q := range []string{"i=0", "i=1", "i=2"} {
		if calls := azCalls(t, d, "az", q); len(calls) == 0 {
			t.Errorf("request %s was not authorized", q)
		}
	}
}
