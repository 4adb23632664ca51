package integration

// The public bug cases of /work/shared/spec/public-bug-cases.md, each with
// the right value: the stock CLI where the case is about what users type,
// raw HTTP where it is about the wire.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/manifest/manifestlist"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pluginsd/pluginsd/integration/registrytest"
)

// bcSampleConfig is the spec's "sample": network host, a mount of /tmp and
// CAP_SYS_ADMIN.
const bcSampleConfig = `{"description":"sample","documentation":"https://example.invalid/sample","entrypoint":["/testplugin"],` +
	`"env":[{"name":"DEBUG","settable":["value"],"value":"0"}],` +
	`"interface":{"socket":"tp.sock","types":["docker.volumedriver/1.0"]},"network":{"type":"host"},` +
	`"mounts":[{"name":"data","source":"/tmp","destination":"/data","type":"bind","options":["rbind"],"settable":["source"]}],` +
	`"linux":{"capabilities":["CAP_SYS_ADMIN"]}}`

// bcSamplePrivileges is the privileges body of bcSampleConfig.
const bcSamplePrivileges = `[{"Name":"network","Description":"permissions to access a network","Value":["host"]},` +
	`{"Name":"mount","Description":"host path to mount","Value":["/tmp"]},` +
	`{"Name":"capabilities","Description":"list of additional capabilities required","Value":["CAP_SYS_ADMIN"]}]` + "\n"

// bcPushSample pushes the sample under repoTag and returns its manifest
// digest.
func bcPushSample(t testing.TB, reg *registrytest.Registry, repoTag string) digest.Digest {
	t.Helper()
	return reg.PushPlugin(t, repoTag, []byte(bcSampleConfig), ftLayer(t, "sample "+repoTag, 4096, gzip.DefaultCompression))
}

// bcContext is a create context: config.json and a rootfs with one file.
func bcContext(t testing.TB, config, variant string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "config.json", Mode: 0o644, Size: int64(len(config)), Typeflag: tar.TypeReg},
		{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir},
		{Name: "rootfs/VARIANT", Mode: 0o644, Size: int64(len(variant)), Typeflag: tar.TypeReg},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		body := map[string]string{"config.json": config, "rootfs/VARIANT": variant}[h.Name]
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bcCreate posts a create context.
func bcCreate(t testing.TB, d *daemon, name string, ctx []byte) ftResp {
	t.Helper()
	return ftDo(t, d.sock, "POST", "/plugins/create?name="+url.QueryEscape(name), string(ctx), map[string]string{"Content-Type": "application/x-tar"})
}

// bcWantError checks a JSON error answer's status and message (exact when
// exact, else a substring).
func bcWantError(t testing.TB, what string, r ftResp, status int, msg string, exact bool) {
	t.Helper()
	var e struct{ Message string }
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Errorf("%s: not a JSON error: %s", what, r)
		return
	}
	if r.status != status {
		t.Errorf("%s: status %d, want %d: %s", what, r.status, status, r)
	}
	if (exact && e.Message != msg) || (!exact && !strings.Contains(e.Message, msg)) {
		t.Errorf("%s: message %q, want %q", what, e.Message, msg)
	}
}

// bcInspect returns a plugin's inspect body (failing the test unless 200).
func bcInspect(t testing.TB, d *daemon, name string) string {
	t.Helper()
	r := ftDo(t, d.sock, "GET", "/plugins/"+name+"/json", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("inspect %s: %s", name, r)
	}
	return r.body
}

// bcPlugin is the part of an inspect body the cases look at.
type bcPlugin struct {
	Id              string
	Name            string
	Enabled         bool
	PluginReference string
	Settings        struct{ Env []string }
	Config          struct {
		Description string
		Network     struct{ Type string }
		Linux       struct{ Capabilities []string }
	}
}

func bcParse(t testing.TB, body string) bcPlugin {
	t.Helper()
	var p bcPlugin
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("inspect body: %v: %s", err, body)
	}
	return p
}

// bcAuth is an X-Registry-Auth value as clients send it (base64url JSON).
func bcAuth(user, pass, host string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass, "serveraddress": host})
	return base64.URLEncoding.EncodeToString(b)
}

// TestCaseB01ByDigest: privileges and install by digest (dockerd panicked
// and died): the same privileges as by tag, PluginReference by digest, the
// default local name with :latest (or the tag kept aside), and a server
// that is still up.
func TestCaseB01ByDigest(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	dg := bcPushSample(t, reg, "bug/sample:1.0")
	repo := reg.Ref("bug/sample")
	for _, remote := range []string{repo + ":1.0", repo + "@" + dg.String(), repo + ":1.0@" + dg.String()} {
		r := ftDo(t, d.sock, "GET", "/v1.41/plugins/privileges?remote="+url.QueryEscape(remote), "", nil)
		if r.status != http.StatusOK || r.body != bcSamplePrivileges {
			t.Errorf("privileges of %s: %s, want 200 %s", remote, r, bcSamplePrivileges)
		}
	}

	r := ftPull(t, d.sock, repo+"@"+dg.String(), "", bcSamplePrivileges)
	ftWantOK(t, "pull by digest", r)
	if got := r.header.Get("Docker-Plugin-Name"); got != repo+":latest" {
		t.Errorf("Docker-Plugin-Name %q, want %q", got, repo+":latest")
	}
	if l := ftStreamLines(r.body); len(l) == 0 || l[0] != `{"status":"Pulling from `+repo+`","id":"`+dg.String()+`"}` {
		t.Errorf("first line of the pull by digest: %q", l)
	}
	p := bcParse(t, bcInspect(t, d, repo+":latest"))
	if p.Name != repo+":latest" || p.PluginReference != repo+"@"+dg.String() {
		t.Errorf("pulled by digest: Name %q PluginReference %q, want %q %q", p.Name, p.PluginReference, repo+":latest", repo+"@"+dg.String())
	}

	// A tag and a digest: the digest is pulled, the tag names the plugin.
	r = ftPull(t, d.sock, repo+":1.0@"+dg.String(), "", bcSamplePrivileges)
	ftWantOK(t, "pull by tag and digest", r)
	p = bcParse(t, bcInspect(t, d, repo+":1.0"))
	if p.Name != repo+":1.0" || p.PluginReference != repo+"@"+dg.String() {
		t.Errorf("pulled by tag and digest: Name %q PluginReference %q", p.Name, p.PluginReference)
	}
	// With an alias.
	ftWantOK(t, "pull by digest with an alias", ftPull(t, d.sock, repo+"@"+dg.String(), "bug-digest", bcSamplePrivileges))
	if p := bcParse(t, bcInspect(t, d, "bug-digest")); p.Name != "bug-digest:latest" || p.PluginReference != repo+"@"+dg.String() {
		t.Errorf("alias: %+v", p)
	}
	// A digest the registry does not hold: an error, not 200 [].
	unknown := repo + "@sha256:" + strings.Repeat("0", 64)
	bcWantError(t, "privileges of an unknown digest", ftDo(t, d.sock, "GET", "/plugins/privileges?remote="+url.QueryEscape(unknown), "", nil),
		http.StatusNotFound, "not found", false)
	if r := ftDo(t, d.sock, "GET", "/_ping", "", nil); r.status != http.StatusOK || r.body != "OK" {
		t.Errorf("ping after the digest requests: %s", r)
	}
	ftCheckClean(t, d.sock, filepath.Join(d.root, "data"), repo+":latest", repo+":1.0", "bug-digest:latest")
}

// TestCaseB02IndexPrivilegesAgree: privileges through an OCI index or a
// manifest list are those of the plain tag, and pull accepts them; with no
// entry for this platform both endpoints refuse alike.
func TestCaseB02IndexPrivilegesAgree(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	mf := bcPushSample(t, reg, "bug-index:plain")
	idx := reg.PushIndex(t, "bug-index:oci", ocispec.MediaTypeImageIndex, registrytest.IndexEntry{Digest: mf, Platform: hostPlatform()})
	reg.PushIndex(t, "bug-index:ml", manifestlist.MediaTypeManifestList, registrytest.IndexEntry{Digest: mf, Platform: hostPlatform()})
	other := hostPlatform()
	other.Architecture = "s390x"
	reg.PushIndex(t, "bug-index:other", ocispec.MediaTypeImageIndex, registrytest.IndexEntry{Digest: mf, Platform: other})

	plain := ftPrivileges(t, d.sock, reg.Ref("bug-index:plain"))
	if plain != bcSamplePrivileges {
		t.Errorf("privileges of the plain tag: %s", plain)
	}
	// The index by digest too (B01 and B02 together).
	if got := ftPrivileges(t, d.sock, reg.Ref("bug-index@"+idx.String())); got != plain {
		t.Errorf("privileges of the index by digest = %s, want %s", got, plain)
	}
	for _, tag := range []string{"oci", "ml"} {
		remote := reg.Ref("bug-index:" + tag)
		if got := ftPrivileges(t, d.sock, remote); got != plain {
			t.Errorf("privileges of :%s = %s, want those of :plain %s", tag, got, plain)
		}
		ftWantOK(t, "pull :"+tag, ftPull(t, d.sock, remote, "bug-idx-"+tag, plain))
		if p := bcParse(t, bcInspect(t, d, "bug-idx-"+tag)); p.PluginReference != remote {
			t.Errorf(":%s PluginReference %q", tag, p.PluginReference)
		}
	}
	remote := reg.Ref("bug-index:other")
	priv := ftDo(t, d.sock, "GET", "/plugins/privileges?remote="+url.QueryEscape(remote), "", nil)
	pull := ftPull(t, d.sock, remote, "bug-idx-other", plain)
	want := "linux/" + hostPlatform().Architecture
	bcWantError(t, "privileges of :other", priv, http.StatusNotFound, want, false)
	bcWantError(t, "pull of :other", pull, http.StatusNotFound, want, false)
	ftCheckClean(t, d.sock, filepath.Join(d.root, "data"), "bug-idx-oci:latest", "bug-idx-ml:latest")
}

// TestCaseB03CreateTwice: a second create of a name (with or without
// :latest) is 409 and leaves one plugin; identical content under another
// name is fine (dockerd refuses it: "content ... already exists").
func TestCaseB03CreateTwice(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	ctx := bcContext(t, bcMinimalConfig, "bug-dup")
	if r := bcCreate(t, d, "bug-dup", ctx); r.status != http.StatusNoContent {
		t.Fatalf("first create: %s", r)
	}
	id := bcParse(t, bcInspect(t, d, "bug-dup")).Id
	for _, name := range []string{"bug-dup", "bug-dup:latest", "docker.io/library/bug-dup"} {
		bcWantError(t, "create "+name, bcCreate(t, d, name, ctx), http.StatusConflict, "plugin bug-dup:latest already exists", true)
	}
	if out := d.mustDocker("plugin", "ls", "-q", "--no-trunc"); out != id {
		t.Errorf("plugin ls: %q, want only %s", out, id)
	}
	ftCheckClean(t, d.sock, filepath.Join(d.root, "data"), "bug-dup:latest")
	// Byte-identical content (config and layer) under another name.
	if r := bcCreate(t, d, "bug-dup2", ctx); r.status != http.StatusNoContent {
		t.Errorf("identical content under another name: %s", r)
	}
	ftCheckClean(t, d.sock, filepath.Join(d.root, "data"), "bug-dup:latest", "bug-dup2:latest")
	// The two share their blobs: the collision dockerd trips on happened.
	id2 := bcParse(t, bcInspect(t, d, "bug-dup2")).Id
	var recs [2]ftRecord
	for i, id := range []string{id, id2} {
		b, err := os.ReadFile(filepath.Join(d.root, "data", "plugins", id, "config.json"))
		if err == nil {
			err = json.Unmarshal(b, &recs[i])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if recs[0].Config != recs[1].Config || !slices.Equal(recs[0].Blobsums, recs[1].Blobsums) {
		t.Errorf("identical contexts gave different blobs: %+v %+v", recs[0], recs[1])
	}
}

const bcMinimalConfig = `{"description":"bug-dup","entrypoint":["/testplugin"],"interface":{"socket":"d.sock","types":["docker.volumedriver/1.0"]}}`

// TestCaseB04ReinstallAlias: installing over an existing alias is refused
// with dockerd's message, by the CLI and on the wire, whatever the spelling
// of the name, and the existing plugin is unchanged.
func TestCaseB04ReinstallAlias(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	bcPushSample(t, reg, "sample:1.0")
	remote := reg.Ref("sample:1.0")
	d.mustDocker("plugin", "install", "--grant-all-permissions", "--disable", "--alias", "bug-base", remote)
	d.mustDocker("plugin", "set", "bug-base", "DEBUG=5")
	before := bcInspect(t, d, "bug-base")

	out, err := d.docker("plugin", "install", "--grant-all-permissions", "--disable", "--alias", "bug-base", remote)
	if err == nil || !strings.Contains(out, "plugin bug-base:latest already exists") {
		t.Errorf("CLI re-install: %v %s", err, out)
	}
	// name -> Docker-Plugin-Name: a tagged name is echoed as typed (§4.3),
	// and the header is set before the name check (§5.3 step 4).
	for name, header := range map[string]string{
		"bug-base":                          "bug-base:latest",
		"bug-base:latest":                   "bug-base:latest",
		"docker.io/library/bug-base:latest": "docker.io/library/bug-base:latest",
	} {
		r := ftPull(t, d.sock, remote, name, bcSamplePrivileges)
		// dockerd answers 400; pluginsd 409, as create does.
		bcWantError(t, "pull name="+name, r, http.StatusConflict, "plugin bug-base:latest already exists", true)
		if got := r.header.Get("Docker-Plugin-Name"); got != header {
			t.Errorf("pull name=%s: Docker-Plugin-Name %q, want %q", name, got, header)
		}
	}
	if after := bcInspect(t, d, "bug-base"); after != before {
		t.Errorf("the existing plugin changed:\nbefore %s\n after %s", before, after)
	}
	if p := bcParse(t, before); !slices.Equal(p.Settings.Env, []string{"DEBUG=5"}) {
		t.Errorf("settings: %v", p.Settings.Env)
	}
	ftCheckClean(t, d.sock, filepath.Join(d.root, "data"), "bug-base:latest")
}

// TestCaseB05Names: how pull names a plugin and how names resolve.
func TestCaseB05Names(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	bcPushSample(t, reg, "sample:1.0")
	remote := reg.Ref("sample:1.0")
	regName := reg.Host + "/bug-aliasreg"
	for name, want := range map[string]string{"bug-alias": "bug-alias:latest", "bug-alias:v2": "bug-alias:v2", regName: regName + ":latest"} {
		r := ftPull(t, d.sock, remote, name, bcSamplePrivileges)
		ftWantOK(t, "pull name="+name, r)
		if got := r.header.Get("Docker-Plugin-Name"); got != want {
			t.Errorf("name=%s: Docker-Plugin-Name %q, want %q", name, got, want)
		}
		if p := bcParse(t, bcInspect(t, d, url.PathEscape(want))); p.Name != want {
			t.Errorf("name=%s: stored as %q, want %q", name, p.Name, want)
		}
	}
	// A tagged name is echoed as typed and stored familiar (spec §4.3).
	r := ftPull(t, d.sock, remote, "docker.io/library/bug-full:v3", bcSamplePrivileges)
	ftWantOK(t, "pull name=docker.io/library/bug-full:v3", r)
	if got := r.header.Get("Docker-Plugin-Name"); got != "docker.io/library/bug-full:v3" {
		t.Errorf("Docker-Plugin-Name %q, want the name as typed", got)
	}
	if p := bcParse(t, bcInspect(t, d, "bug-full:v3")); p.Name != "bug-full:v3" {
		t.Errorf("stored as %q, want bug-full:v3", p.Name)
	}
	id := bcParse(t, bcInspect(t, d, "bug-alias:latest")).Id
	for _, spelling := range []string{"bug-alias", "docker.io/library/bug-alias:latest", "library/bug-alias", id[:12]} {
		if p := bcParse(t, bcInspect(t, d, spelling)); p.Id != id {
			t.Errorf("inspect %s: %s, want %s", spelling, p.Id, id)
		}
	}
	bcWantError(t, "inspect bug-aliasreg", ftDo(t, d.sock, "GET", "/plugins/bug-aliasreg/json", "", nil), http.StatusNotFound, `plugin "bug-aliasreg" not found`, true)
	// Invalid local names are client errors (dockerd: 500), and create nothing.
	// distribution/reference v0.6 (as in moby v29) names the repository:
	// "repository name (library/BUG-UPPER) must be lowercase"; dockerd 20.10
	// said "repository name must be lowercase".
	bcWantError(t, "name=BUG-UPPER", ftPull(t, d.sock, remote, "BUG-UPPER", bcSamplePrivileges), http.StatusBadRequest,
		"must be lowercase", false)
	bcWantError(t, "name with a digest", ftPull(t, d.sock, remote, "bug-x@sha256:"+strings.Repeat("a", 64), bcSamplePrivileges), http.StatusBadRequest,
		"cannot use digest in plugin tag", true)
	ftCheckClean(t, d.sock, filepath.Join(d.root, "data"), "bug-alias:latest", "bug-alias:v2", regName+":latest", "bug-full:v3")
}

// TestCaseB14Upgrade: upgrade refuses an enabled plugin (409), refuses old
// or no privileges before changing anything (dockerd accepted the old ones
// and leaked a temp rootfs on []), and on success keeps the ID and the
// settings while replacing config and PluginReference.
func TestCaseB14Upgrade(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	data := filepath.Join(d.root, "data")
	reg := registrytest.New(t, registrytest.Options{})
	r1, r2 := reg.Ref("bug-sample:1.0"), reg.Ref("bug-sample:2.0")
	d.mustDocker("plugin", "create", r1, pluginDir(t, volConfig("/tmp")))
	d.mustDocker("plugin", "push", r1)
	v2 := strings.Replace(volConfig("/tmp"), `"CAP_SYS_ADMIN"`, `"CAP_SYS_ADMIN", "CAP_NET_ADMIN"`, 1)
	v2 = strings.Replace(v2, "test volume plugin", "test volume plugin 2.0", 1)
	d.mustDocker("plugin", "create", r2, pluginDir(t, v2))
	d.mustDocker("plugin", "push", r2)
	d.mustDocker("plugin", "rm", r1, r2)
	old, privs := ftPrivileges(t, d.sock, r1), ftPrivileges(t, d.sock, r2)
	if !strings.Contains(privs, `["CAP_SYS_ADMIN","CAP_NET_ADMIN"]`) {
		t.Fatalf("privileges of 2.0: %s", privs)
	}
	ftWantOK(t, "install bug-p3", ftPull(t, d.sock, r1, "bug-p3", old))
	if r := ftDo(t, d.sock, "POST", "/plugins/bug-p3/enable?timeout=30", "", nil); r.status != http.StatusOK {
		t.Fatalf("enable: %s", r)
	}
	bcWantError(t, "upgrade while enabled", ftUpgrade(t, d.sock, "bug-p3", r2, privs), http.StatusConflict,
		"plugin must be disabled before upgrading: plugin bug-p3:latest is enabled", true)
	if r := ftDo(t, d.sock, "POST", "/plugins/bug-p3/disable", "", nil); r.status != http.StatusOK {
		t.Fatalf("disable: %s", r)
	}
	if r := ftDo(t, d.sock, "POST", "/plugins/bug-p3/set", `["DEBUG=7"]`, nil); r.status != http.StatusNoContent {
		t.Fatalf("set: %s", r)
	}
	before := bcInspect(t, d, "bug-p3")
	for what, body := range map[string]string{"old privileges": old, "[]": "[]", "no body": ""} {
		bcWantError(t, "upgrade with "+what, ftUpgrade(t, d.sock, "bug-p3", r2, body), http.StatusBadRequest, "incorrect privileges", true)
		if after := bcInspect(t, d, "bug-p3"); after != before {
			t.Errorf("upgrade with %s changed the plugin:\nbefore %s\n after %s", what, before, after)
		}
		ftCheckClean(t, d.sock, data, "bug-p3:latest")
	}

	// {name} of an upgrade is a name, not an ID (spec §5.8).
	id := bcParse(t, before).Id
	bcWantError(t, "upgrade by ID prefix", ftUpgrade(t, d.sock, id[:12], r2, privs), http.StatusNotFound,
		`plugin "`+id[:12]+`:latest" not found`, true)
	r := ftUpgrade(t, d.sock, id, r2, privs)
	if r.status < 400 || !strings.Contains(r.body, "cannot specify 64-byte hexadecimal strings") {
		t.Errorf("upgrade by full ID: %s", r)
	}
	ftCheckClean(t, d.sock, data, "bug-p3:latest")

	ftWantOK(t, "upgrade", ftUpgrade(t, d.sock, "bug-p3", r2, privs))
	b, a := bcParse(t, before), bcParse(t, bcInspect(t, d, "bug-p3"))
	if a.Id != b.Id || a.Name != "bug-p3:latest" || a.PluginReference != r2 || a.Config.Description != "test volume plugin 2.0" ||
		!slices.Equal(a.Config.Linux.Capabilities, []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}) ||
		!slices.Equal(a.Settings.Env, []string{"MODE=volume", "DEBUG=7"}) {
		t.Errorf("after the upgrade: %+v\nbefore: %+v", a, b)
	}
	ftCheckClean(t, d.sock, data, "bug-p3:latest")
}

// TestCaseB15TokenScopes: plugin pulls and pushes ask the token service for
// the repository(plugin) class and the plain one.
func TestCaseB15TokenScopes(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{Auth: registrytest.AuthToken, Users: map[string]string{"bug-user": "bug-pass"}})
	bcPushSample(t, reg, "bug/sample:1.0")
	auth := map[string]string{"X-Registry-Auth": bcAuth("bug-user", "bug-pass", reg.Host)}
	remote := reg.Ref("bug/sample:1.0")

	r := ftDo(t, d.sock, "GET", "/plugins/privileges?remote="+url.QueryEscape(remote), "", auth)
	if r.status != http.StatusOK || r.body != bcSamplePrivileges {
		t.Fatalf("privileges: %s", r)
	}
	ftWantOK(t, "pull", ftDo(t, d.sock, "POST", "/plugins/pull?remote="+url.QueryEscape(remote)+"&name=bug-tok", bcSamplePrivileges, auth))
	bcWantScopes(t, reg.TokenRequests(), "bug/sample", "pull")

	pushName := reg.Ref("bug-tokpush:1.0")
	if r := bcCreate(t, d, pushName, bcContext(t, bcMinimalConfig, "bug-tokpush")); r.status != http.StatusNoContent {
		t.Fatalf("create %s: %s", pushName, r)
	}
	r = ftDo(t, d.sock, "POST", "/plugins/"+pushName+"/push", "", auth)
	ftWantOK(t, "push", r)
	if l := ftStreamLines(r.body); len(l) == 0 || !strings.Contains(l[len(l)-1], `"aux":{"Tag":"1.0","Digest":"sha256:`) {
		t.Errorf("push stream: %s", r.body)
	}
	bcWantScopes(t, reg.TokenRequests(), "bug-tokpush", "pull,push")
}

// bcWantScopes checks that the token requests for repo were all made as
// bug-user, all granted, and all asked for both scope classes with actions;
// at least one such request must exist.
func bcWantScopes(t testing.TB, reqs []registrytest.TokenRequest, repo, actions string) {
	t.Helper()
	n := 0
	for _, tr := range reqs {
		if !slices.ContainsFunc(tr.Scopes, func(s string) bool { return strings.HasSuffix(s, ":"+repo+":"+actions) }) {
			continue
		}
		n++
		if tr.User != "bug-user" || tr.Status != http.StatusOK {
			t.Errorf("token request for %s: %+v", repo, tr)
		}
		for _, want := range []string{"repository(plugin):" + repo + ":" + actions, "repository:" + repo + ":" + actions} {
			if !slices.Contains(tr.Scopes, want) {
				t.Errorf("token request for %s lacks scope %s: %v", repo, want, tr.Scopes)
			}
		}
	}
	if n == 0 {
		t.Errorf("no token request with %s scopes for %s: %+v", actions, repo, reqs)
	}
}

// TestCaseB16PrivilegesAuth: GET /plugins/privileges honours X-Registry-Auth
// (docker-py did not send it; dockerd answered 200 [] on every failure).
// Without it the registry's refusal comes back as an error, 403 (a 401 makes
// the stock CLI wait on a login prompt), never 200 [].
func TestCaseB16PrivilegesAuth(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{registrytest.AuthHtpasswd, registrytest.AuthToken} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			d := startDaemon(t, "")
			reg := registrytest.New(t, registrytest.Options{Auth: mode, Users: map[string]string{"bug-user": "bug-pass"}})
			bcPushSample(t, reg, "bug/sample:1.0")
			path := "/plugins/privileges?remote=" + url.QueryEscape(reg.Ref("bug/sample:1.0"))
			r := ftDo(t, d.sock, "GET", path, "", map[string]string{"X-Registry-Auth": bcAuth("bug-user", "bug-pass", reg.Host)})
			if r.status != http.StatusOK || r.body != bcSamplePrivileges {
				t.Errorf("with credentials: %s", r)
			}
			for what, h := range map[string]map[string]string{
				"no header":      nil,
				"empty auth":     {"X-Registry-Auth": "e30="},
				"wrong password": {"X-Registry-Auth": bcAuth("bug-user", "nope", reg.Host)},
			} {
				r := ftDo(t, d.sock, "GET", path, "", h)
				if r.status == http.StatusOK {
					t.Errorf("%s: 200 %q, want an error", what, r.body)
					continue
				}
				bcWantError(t, what, r, http.StatusForbidden, bcRegistryMessage(mode, what), false)
			}
			// The stock CLI without credentials fails at once with the
			// registry's refusal (a 401 would leave it waiting on a login
			// prompt); with them it installs.
			out, err := bcDocker(t, d, "", "plugin", "install", "--grant-all-permissions", "--disable", "--alias", "bug-noauth", reg.Ref("bug/sample:1.0"))
			if err == nil || !strings.Contains(out, "Error response from daemon") {
				t.Errorf("CLI install without credentials: %v %s", err, out)
			}
			out, err = bcDocker(t, d, bcDockerConfig(t, reg.Host, "bug-user", "bug-pass"), "plugin", "install", "--grant-all-permissions", "--disable", "--alias", "bug-auth", reg.Ref("bug/sample:1.0"))
			if err != nil {
				t.Errorf("CLI install with credentials: %v %s", err, out)
			}
			// An unknown tag is an error too (dockerd: 200 []).
			r = ftDo(t, d.sock, "GET", "/plugins/privileges?remote="+url.QueryEscape(reg.Ref("bug/sample:nope")), "",
				map[string]string{"X-Registry-Auth": bcAuth("bug-user", "bug-pass", reg.Host)})
			bcWantError(t, "unknown tag", r, http.StatusNotFound, "not found", false)
		})
	}
}

// bcDockerConfig is a docker config dir with credentials for host.
func bcDockerConfig(t testing.TB, host, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := `{"auths":{"` + host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// bcDocker runs the stock CLI with the docker config dir cfgDir (an empty
// one when ""), stdin at EOF, and a 20 s limit: a CLI waiting on a prompt
// fails the test instead of hanging it.
func bcDocker(t testing.TB, d *daemon, cfgDir string, args ...string) (string, error) {
	t.Helper()
	if cfgDir == "" {
		cfgDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerBin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.host(), "DOCKER_CONFIG="+cfgDir, "DOCKER_CLI_HINTS=false")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Errorf("docker %s: still running after 20s (waiting on a prompt?)\n%s", strings.Join(args, " "), out)
	}
	return strings.TrimSpace(string(out)), err
}

// bcRegistryMessage is the text of the refusal a client must see.
func bcRegistryMessage(mode, what string) string {
	switch {
	case mode == registrytest.AuthToken && what == "wrong password":
		return "invalid username or password" // the token service's message
	default:
		return "authentication required" // the registry's UNAUTHORIZED message
	}
}

// TestCaseB17ImageIsNotAPlugin: an image is refused as "not a plugin" by
// privileges, by pull and by the CLI, and nothing is created.
func TestCaseB17ImageIsNotAPlugin(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	reg.PushImage(t, "bug-image:1.0", smallLayer(t, "bug-image"))
	remote := reg.Ref("bug-image:1.0")
	bcWantError(t, "privileges", ftDo(t, d.sock, "GET", "/plugins/privileges?remote="+url.QueryEscape(remote), "", nil),
		http.StatusBadRequest, "is not a plugin", false)
	bcWantError(t, "pull", ftPull(t, d.sock, remote, "", "[]"), http.StatusBadRequest, "is not a plugin", false)
	out, err := d.docker("plugin", "install", "--grant-all-permissions", remote)
	if err == nil || !strings.Contains(out, "is not a plugin") {
		t.Errorf("CLI install of an image: %v %s", err, out)
	}
	ftCheckClean(t, d.sock, filepath.Join(d.root, "data"))
}

// TestCaseB23NoPrivileges: a plugin needing nothing has an empty privilege
// list (network "", "null" and "bridge" need no network privilege), and the
// CLI installs it without a prompt (stdin is /dev/null and there is no
// --grant-all-permissions: a prompt would read EOF and refuse).
func TestCaseB23NoPrivileges(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	reg := registrytest.New(t, registrytest.Options{})
	for _, typ := range []string{"", "null", "bridge"} {
		cfg := `{"description":"nonet","entrypoint":["/testplugin"],"interface":{"socket":"n.sock","types":["docker.volumedriver/1.0"]},` +
			`"network":{"type":"` + typ + `"},"linux":{"capabilities":[]}}`
		tag := "bug-nonet:" + map[string]string{"": "1.0", "null": "null", "bridge": "bridge"}[typ]
		reg.PushPlugin(t, tag, []byte(cfg), smallLayer(t, "nonet "+typ))
		if got := ftPrivileges(t, d.sock, reg.Ref(tag)); got != "[]\n" {
			t.Errorf("privileges of network type %q: %q, want []", typ, got)
		}
	}
	// Raw pulls accepting nothing, spelled as dockerd (null), as pluginsd
	// ([]) or as an empty body, all pass.
	for i, body := range []string{"null", "[]", ""} {
		ftWantOK(t, "pull with body "+body, ftPull(t, d.sock, reg.Ref("bug-nonet:1.0"), fmt.Sprintf("bug-nonet-%d", i), body))
	}
	// And null is no way around privileges a plugin does need.
	bcPushSample(t, reg, "sample:1.0")
	bcWantError(t, "null for the sample", ftPull(t, d.sock, reg.Ref("sample:1.0"), "bug-null", "null"), http.StatusBadRequest, "incorrect privileges", true)
	remote := reg.Ref("bug-nonet:1.0")
	out, err := d.docker("plugin", "install", "--disable", remote)
	if err != nil || strings.Contains(out, "privileges") || strings.Contains(out, "grant") {
		t.Fatalf("CLI install without a prompt: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Installed plugin "+remote) {
		t.Errorf("install output: %s", out)
	}
	if out := d.mustDocker("plugin", "inspect", "-f", "{{printf \"%q\" .Config.Network.Type}} {{.Enabled}}", remote); out != `"" false` {
		t.Errorf("installed: %s", out)
	}
	ftCheckClean(t, d.sock, filepath.Join(d.root, "data"), remote, "bug-nonet-0:latest", "bug-nonet-1:latest", "bug-nonet-2:latest")
}
