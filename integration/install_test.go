package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"

	mobyclient "github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pluginsd/pluginsd/integration/registrytest"
)

// dockerWithConfig runs the CLI with a docker config dir holding
// credentials for host (the CLI sends them as X-Registry-Auth).
func dockerWithAuth(t *testing.T, d *daemon, host, user, pass string, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	out, err := d.docker(args...)
	return out, err
}

// TestCLIPushInstall: create, push (the digest is printed), remove, install
// with privileges shown and granted, aliases, duplicates, missing remotes,
// refused privileges — with the stock CLI against a real registry.
func TestCLIPushInstall(t *testing.T) {
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	src := t.TempDir()
	r := reg.Ref("team/vol:1.0")
	d.mustDocker("plugin", "create", r, pluginDir(t, volConfig(src)))
	out := d.mustDocker("plugin", "push", r)
	m := regexp.MustCompile(`1\.0: digest: (sha256:[0-9a-f]{64}) size: \d+`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("push output has no digest line:\n%s", out)
	}
	d.mustDocker("plugin", "rm", r)

	resp := rawGet(t, d, "/plugins/privileges?remote="+r)
	want := `[{"Name":"network","Description":"permissions to access a network","Value":["none"]},{"Name":"mount","Description":"host path to mount","Value":["` + src + `"]},{"Name":"capabilities","Description":"list of additional capabilities required","Value":["CAP_SYS_ADMIN"]}]` + "\n"
	if resp != want {
		t.Errorf("privileges:\n got %s\nwant %s", resp, want)
	}
	out = d.mustDocker("plugin", "install", "--grant-all-permissions", "--disable", r)
	if !strings.Contains(out, "Installed plugin "+r) {
		t.Errorf("install output: %s", out)
	}
	if out := d.mustDocker("plugin", "inspect", "-f", "{{.Enabled}} {{.PluginReference}} {{json .Settings.Env}}", r); out != `false `+r+` ["MODE=volume","DEBUG=0"]` {
		t.Errorf("installed: %s", out)
	}
	// By digest (dockerd crashes: public case B01).
	d.mustDocker("plugin", "install", "--grant-all-permissions", "--disable", "--alias", "bydigest", reg.Ref("team/vol@"+m[1]))
	if out := d.mustDocker("plugin", "inspect", "-f", "{{.Name}} {{.PluginReference}}", "bydigest"); out != "bydigest:latest "+reg.Ref("team/vol@"+m[1]) {
		t.Errorf("by digest: %s", out)
	}
	// Alias, with install-time settings, enabled by the CLI afterwards.
	d.mustDocker("plugin", "install", "--grant-all-permissions", "--alias", "al", r, "DEBUG=3")
	if out := d.mustDocker("plugin", "inspect", "-f", "{{.Name}} {{.Enabled}} {{json .Settings.Env}}", "al"); out != `al:latest true ["MODE=volume","DEBUG=3"]` {
		t.Errorf("alias: %s", out)
	}
	out, err := d.docker("plugin", "install", "--grant-all-permissions", "--disable", r)
	if err == nil || !strings.Contains(out, "plugin "+r+" already exists") {
		t.Errorf("duplicate install: %v %s", err, out)
	}
	out, err = d.docker("plugin", "install", "--grant-all-permissions", reg.Ref("team/nosuch:1.0"))
	if err == nil || !strings.Contains(out, "not found") {
		t.Errorf("missing remote: %v %s", err, out)
	}
	// Refused privileges: nothing is installed, and the status is real.
	code, body := rawPost(t, d, "/plugins/pull?remote="+r+"&name=mismatch", "application/json", `[]`)
	if code != http.StatusBadRequest || !strings.Contains(body, "incorrect privileges") {
		t.Errorf("mismatch: %d %s", code, body)
	}
	// Every entry is compared: a different capability is refused (dockerd
	// skips the first entry after sorting: public case B14).
	wrong := strings.Replace(strings.TrimSpace(want), "CAP_SYS_ADMIN", "CAP_CHOWN", 1)
	code, body = rawPost(t, d, "/plugins/pull?remote="+r+"&name=mismatch", "application/json", wrong)
	if code != http.StatusBadRequest || !strings.Contains(body, "incorrect privileges") {
		t.Errorf("wrong capability: %d %s", code, body)
	}
	if _, err := d.docker("plugin", "inspect", "mismatch"); err == nil {
		t.Error("a refused install left a plugin")
	}
	d.mustDocker("plugin", "rm", "-f", "al")
}

func rawGet(t *testing.T, d *daemon, path string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://pluginsd"+path, nil)
	resp, err := d.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func rawPost(t *testing.T, d *daemon, path, ct, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://pluginsd"+path, strings.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := d.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPullStream checks the wire of a pull: 200, Docker-Plugin-Name, \r\n
// lines, Docker's vocabulary, and an error after the first line in-stream.
func TestPullStream(t *testing.T) {
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	cfg := `{"description":"p","entrypoint":["/testplugin"],"interface":{"socket":"tp.sock","types":["docker.volumedriver/1.0"]}}`
	reg.PushPlugin(t, "s/p:1.0", []byte(cfg), smallLayer(t, "p"))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://pluginsd/v1.41/plugins/pull?remote="+reg.Ref("s/p:1.0")+"&name=", strings.NewReader(""))
	resp, err := d.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Plugin-Name") != reg.Ref("s/p:1.0") || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("pull: %d %v", resp.StatusCode, resp.Header)
	}
	b, _ := io.ReadAll(resp.Body)
	lines := strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
	if lines[0] != `{"status":"Pulling from `+reg.Host+`/s/p","id":"1.0"}` {
		t.Errorf("first line %s", lines[0])
	}
	if !strings.HasPrefix(lines[1], `{"status":"Digest: sha256:`) {
		t.Errorf("second line %s", lines[1])
	}
	if !strings.Contains(lines[len(lines)-1], `"status":"Complete","progressDetail":{}`) {
		t.Errorf("last line %s", lines[len(lines)-1])
	}
	// Registry errors keep their real status (404), name taken is 409.
	code, body := rawPost(t, d, "/plugins/pull?remote="+reg.Ref("s/none:1.0"), "application/json", "[]")
	if code != http.StatusNotFound || !strings.Contains(body, "error resolving plugin reference") {
		t.Errorf("missing: %d %s", code, body)
	}
	code, body = rawPost(t, d, "/plugins/pull?remote="+reg.Ref("s/p:1.0"), "application/json", "[]")
	if code != http.StatusConflict || !strings.Contains(body, "already exists") {
		t.Errorf("taken: %d %s", code, body)
	}
	// An image is not a plugin (B17), and nothing is created.
	reg.PushImage(t, "s/img:1.0", smallLayer(t, "img"))
	code, body = rawPost(t, d, "/plugins/pull?remote="+reg.Ref("s/img:1.0"), "application/json", "[]")
	if code != http.StatusBadRequest || !strings.Contains(body, "is not a plugin") {
		t.Errorf("image: %d %s", code, body)
	}
}

// smallLayer is an uncompressed rootfs tar with one file.
func smallLayer(t *testing.T, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "VARIANT", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestIndexAndAuth: a plugin behind an OCI index and a manifest list (B02)
// installs through privileges and pull alike; a token-auth registry gets
// the repository(plugin) scope (B15) with the CLI's credentials.
func TestIndexAndAuth(t *testing.T) {
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{Auth: registrytest.AuthToken, Users: map[string]string{"alice": "s3cret"}})
	cfg := `{"description":"idx","entrypoint":["/testplugin"],"interface":{"socket":"tp.sock","types":["docker.volumedriver/1.0"]},"linux":{"capabilities":["CAP_NET_ADMIN"]}}`
	mf := reg.PushPlugin(t, "s/idx:plain", []byte(cfg), smallLayer(t, "idx"))
	reg.PushIndex(t, "s/idx:oci", "application/vnd.oci.image.index.v1+json", registrytest.IndexEntry{Digest: mf, Platform: hostPlatform()})
	reg.PushIndex(t, "s/idx:ml", "application/vnd.docker.distribution.manifest.list.v2+json", registrytest.IndexEntry{Digest: mf, Platform: hostPlatform()})
	for _, tag := range []string{"oci", "ml"} {
		out, err := dockerWithAuth(t, d, reg.Host, "alice", "s3cret", "plugin", "install", "--grant-all-permissions", "--disable", "--alias", "idx-"+tag, reg.Ref("s/idx:"+tag))
		if err != nil {
			t.Fatalf("install %s: %v\n%s", tag, err, out)
		}
	}
	var sawPluginScope bool
	for _, tr := range reg.TokenRequests() {
		for _, s := range tr.Scopes {
			if strings.HasPrefix(s, "repository(plugin):s/idx:") && tr.User == "alice" {
				sawPluginScope = true
			}
		}
	}
	if !sawPluginScope {
		t.Errorf("no token request with the plugin scope as alice: %+v", reg.TokenRequests())
	}
	out, err := dockerWithAuth(t, d, reg.Host, "alice", "wrong", "plugin", "install", "--grant-all-permissions", "--disable", "--alias", "nope", reg.Ref("s/idx:plain"))
	if err == nil {
		t.Errorf("install with a wrong password succeeded: %s", out)
	}
	// No platform match is a 404 naming the platform.
	other := hostPlatform()
	other.Architecture = "s390x"
	reg.PushIndex(t, "s/idx:other", "application/vnd.oci.image.index.v1+json", registrytest.IndexEntry{Digest: mf, Platform: other})
	out, err = dockerWithAuth(t, d, reg.Host, "alice", "s3cret", "plugin", "install", "--grant-all-permissions", "--disable", "--alias", "other", reg.Ref("s/idx:other"))
	if err == nil || !strings.Contains(out, "linux/"+hostPlatform().Architecture) {
		t.Errorf("no platform match: %v %s", err, out)
	}
}

// TestCLIUpgrade: upgrade only when disabled, keeps ID and settings,
// replaces config, rootfs and PluginReference (B14).
func TestCLIUpgrade(t *testing.T) {
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	r1, r2 := reg.Ref("up/p:1.0"), reg.Ref("up/p:2.0")
	d.mustDocker("plugin", "create", r1, pluginDir(t, volConfig("/tmp")))
	d.mustDocker("plugin", "push", r1)
	d.mustDocker("plugin", "rm", r1)
	v2 := strings.Replace(volConfig("/tmp"), `"CAP_SYS_ADMIN"`, `"CAP_SYS_ADMIN", "CAP_NET_ADMIN"`, 1)
	v2 = strings.Replace(v2, "test volume plugin", "test volume plugin v2", 1)
	d.mustDocker("plugin", "create", r2, pluginDir(t, v2))
	d.mustDocker("plugin", "push", r2)
	d.mustDocker("plugin", "rm", r2)
	d.mustDocker("plugin", "install", "--grant-all-permissions", r1)
	id := d.mustDocker("plugin", "inspect", "-f", "{{.Id}}", r1)
	out, err := d.docker("plugin", "upgrade", "--grant-all-permissions", r1, r2)
	if err == nil || !strings.Contains(out, "disable") {
		t.Errorf("upgrade while enabled: %v %s", err, out)
	}
	d.mustDocker("plugin", "disable", r1)
	d.mustDocker("plugin", "set", r1, "DEBUG=7", "data.source=/var/tmp")
	// The old privileges are refused and nothing changes.
	old := rawGet(t, d, "/plugins/privileges?remote="+r1)
	code, body := rawPost(t, d, "/plugins/"+r1+"/upgrade?remote="+r2, "application/json", old)
	if code != http.StatusBadRequest || !strings.Contains(body, "incorrect privileges") {
		t.Errorf("upgrade with old privileges: %d %s", code, body)
	}
	upgradeWithCLI(t, d, r1, r2)
	out = d.mustDocker("plugin", "inspect", "-f", "{{.Id}} {{.PluginReference}} {{.Config.Description}} {{json .Settings.Env}} {{json .Config.Linux.Capabilities}}", r1)
	if want := id + " " + r2 + ` test volume plugin v2 ["MODE=volume","DEBUG=7"] ["CAP_SYS_ADMIN","CAP_NET_ADMIN"]`; out != want {
		t.Errorf("after upgrade:\n got %s\nwant %s", out, want)
	}
	// The mount source the user set survives the new config (the runtime
	// reads mounts from the config; dockerd loses it).
	if out := d.mustDocker("plugin", "inspect", "-f", "{{range .Config.Mounts}}{{.Source}}{{end}} {{range .Settings.Mounts}}{{.Source}}{{end}}", r1); out != "/var/tmp /var/tmp" {
		t.Errorf("mount source after upgrade: %s", out)
	}
	// Only one rootfs is left in the plugin's directory.
	entries, _ := os.ReadDir(filepath.Join(d.root, "data", "plugins", id))
	var rootfses []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "rootfs") {
			rootfses = append(rootfses, e.Name())
		}
	}
	if len(rootfses) != 1 {
		t.Errorf("rootfs dirs after upgrade: %v", rootfses)
	}
	d.mustDocker("plugin", "enable", r1)
	d.mustDocker("plugin", "rm", "-f", r1)
}

// hostPlatform is this machine's platform, as index entries name it.
func hostPlatform() ocispec.Platform {
	return ocispec.Platform{OS: goruntime.GOOS, Architecture: goruntime.GOARCH}
}

// runDockerStdin runs the CLI with stdin.
func runDockerStdin(t *testing.T, host, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), dockerBin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_CLI_HINTS=false")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// upgradeWithCLI answers the CLI's confirmation prompt.
func upgradeWithCLI(t *testing.T, d *daemon, name, remote string) {
	t.Helper()
	out, err := runDockerStdin(t, d.host(), "y\n", "plugin", "upgrade", "--grant-all-permissions", name, remote)
	if err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
}

// TestConcurrentInstall: four installs under one name, exactly one wins
// (B04); the layer is downloaded once for concurrent installs of one
// content under different names.
func TestConcurrentInstall(t *testing.T) {
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	cfg := `{"description":"c","entrypoint":["/testplugin"],"interface":{"socket":"tp.sock","types":["docker.volumedriver/1.0"]}}`
	reg.PushPlugin(t, "c/p:1.0", []byte(cfg), smallLayer(t, "conc"))
	var wg sync.WaitGroup
	codes := make([]string, 8)
	for i := range codes {
		wg.Go(func() {
			name := "same"
			if i >= 4 {
				name = fmt.Sprintf("other%d", i)
			}
			code, body := rawPost(t, d, "/plugins/pull?remote="+reg.Ref("c/p:1.0")+"&name="+name, "application/json", "[]")
			codes[i] = fmt.Sprintf("%d %s", code, lastLine(body))
		})
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, c := range codes[:4] {
		switch {
		case strings.HasPrefix(c, "200") && !strings.Contains(c, "error"):
			ok++
		case strings.HasPrefix(c, "409"):
			conflicts++
		}
	}
	if ok != 1 || conflicts != 3 {
		t.Errorf("same name: %q", codes[:4])
	}
	for _, c := range codes[4:] {
		if !strings.HasPrefix(c, "200") || strings.Contains(c, "error") {
			t.Errorf("other names: %q", codes[4:])
		}
	}
	if out := d.mustDocker("plugin", "ls", "-q"); len(strings.Fields(out)) != 5 {
		t.Errorf("plugins: %s", out)
	}
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	return last
}

// TestMobyClientInstall drives install, push and upgrade through the
// maintained SDK client.
func TestMobyClientInstall(t *testing.T) {
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	ctx := t.Context()
	c, err := mobyclient.New(mobyclient.WithHost(d.host()), mobyclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := reg.Ref("sdk/p:1.0")
	if _, err := c.PluginCreate(ctx, tarDir(t, pluginDir(t, volConfig("/tmp"))), mobyclient.PluginCreateOptions{RepoName: r}); err != nil {
		t.Fatal(err)
	}
	res, err := c.PluginPush(ctx, r, mobyclient.PluginPushOptions{RegistryAuth: "e30="})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res)
	res.Close()
	var aux struct {
		Aux struct {
			Tag, Digest string
			Size        int
		}
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\r\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &aux); err != nil || aux.Aux.Tag != "1.0" || !strings.HasPrefix(aux.Aux.Digest, "sha256:") {
		t.Errorf("push aux: %v %s", err, lines[len(lines)-1])
	}
	if _, err := c.PluginRemove(ctx, r, mobyclient.PluginRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	inst, err := c.PluginInstall(ctx, r, mobyclient.PluginInstallOptions{RemoteRef: r, AcceptAllPermissions: true, Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(inst)
	inst.Close()
	if !strings.Contains(string(out), "Complete") {
		t.Errorf("install stream: %s", out)
	}
	p, err := c.PluginInspect(ctx, r, mobyclient.PluginInspectOptions{})
	if err != nil || p.Plugin.PluginReference != r {
		t.Errorf("inspect: %v %+v", err, p.Plugin)
	}
}
