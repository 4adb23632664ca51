package integration

// Hostile and malformed input to POST /plugins/create and POST
// /plugins/{name}/set (spec §5.9, §5.11, §1.5): every refusal must be a 4xx
// with a clear message, and must leave nothing behind: no plugin, no staged
// directory, no ingest file, no orphaned blob, and nothing written outside
// the data root.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// biEntry is one entry of a tar built by biTar.
type biEntry struct {
	hdr  tar.Header
	body []byte
}

var biModTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func biFile(name string, body []byte) biEntry {
	return biEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: biModTime}, body: body}
}

func biDir(name string) biEntry {
	return biEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: biModTime}}
}

func biSymlink(name, target string) biEntry {
	return biEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: biModTime}}
}

func biHardlink(name, target string) biEntry {
	return biEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: biModTime}}
}

// biTar writes entries as an uncompressed tar, hostile names included.
func biTar(t testing.TB, entries ...biEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("tar body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var biVariant atomic.Int64

// biContext is a valid build context (config.json, rootfs/, a unique
// rootfs/VARIANT) followed by extra entries.
func biContext(t testing.TB, config string, extra ...biEntry) []byte {
	t.Helper()
	variant := fmt.Sprintf("%s %d %d", t.Name(), biVariant.Add(1), time.Now().UnixNano())
	entries := []biEntry{biFile("config.json", []byte(config)), biDir("rootfs"), biFile("rootfs/VARIANT", []byte(variant))}
	return biTar(t, append(entries, extra...)...)
}

func biGzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// biCreate posts body to /plugins/create?name=name over a raw connection.
func biCreate(t testing.TB, d *daemon, name, contentType string, body []byte) wireResp {
	t.Helper()
	h := map[string]string{}
	if contentType != "" {
		h["Content-Type"] = contentType
	}
	return wireRaw(t, d.sock, "POST", "/plugins/create?name="+url.QueryEscape(name), h, body)
}

// biRecord is the part of a plugin record (spec §3.6) naming its blobs.
type biRecord struct {
	Config   string
	Blobsums []string
	Manifest string
}

// biCheckClean checks that the daemon holds exactly the plugins named want
// and nothing else on disk (see ftCheckClean, which it is).
func biCheckClean(t testing.TB, sock, dataRoot string, want ...string) {
	t.Helper()
	ftCheckClean(t, sock, dataRoot, want...)
}

func biNames(es []os.DirEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

// biSentinel is a file outside the data root that hostile archives aim at.
type biSentinel struct {
	dir, file string
	st        syscall.Stat_t
	dirMode   os.FileMode
}

func newBISentinel(t testing.TB) *biSentinel {
	t.Helper()
	s := &biSentinel{dir: t.TempDir()}
	s.file = filepath.Join(s.dir, "sentinel")
	if err := os.WriteFile(s.file, []byte("original"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(s.file, &s.st); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	s.dirMode = fi.Mode()
	return s
}

// check fails if anything was written, linked, chmod'ed or chown'ed in the
// sentinel directory.
func (s *biSentinel) check(t testing.TB) {
	t.Helper()
	es, err := os.ReadDir(s.dir)
	if err != nil || !slices.Equal(biNames(es), []string{"sentinel"}) {
		t.Errorf("sentinel dir now holds %v (%v)", biNames(es), err)
	}
	b, err := os.ReadFile(s.file)
	if err != nil || string(b) != "original" {
		t.Errorf("sentinel content %q (%v)", b, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(s.file, &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 1 || st.Mode != s.st.Mode || st.Uid != s.st.Uid || st.Gid != s.st.Gid || st.Mtim != s.st.Mtim {
		t.Errorf("sentinel file changed: nlink %d mode %o uid %d gid %d", st.Nlink, st.Mode, st.Uid, st.Gid)
	}
	fi, err := os.Stat(s.dir)
	if err != nil || fi.Mode() != s.dirMode {
		t.Errorf("sentinel dir mode changed: %v %v", fi.Mode(), err)
	}
}

// biNoToken fails if a file whose name holds token exists under root.
func biNoToken(t testing.TB, root, token string) {
	t.Helper()
	_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err == nil && strings.Contains(de.Name(), token) {
			t.Errorf("hostile entry landed at %s", p)
		}
		return nil
	})
}

func TestBadInputCreate(t *testing.T) {
	d := startDaemon(t, "")
	data := filepath.Join(d.root, "data")
	sent := newBISentinel(t)
	token := fmt.Sprintf("pwn%d", time.Now().UnixNano())
	var passwd syscall.Stat_t
	if err := syscall.Stat("/etc/passwd", &passwd); err != nil {
		t.Fatal(err)
	}

	wireCreate(t, d, "taken", minimalConfig)
	biCheckClean(t, d.sock, data, "taken:latest")

	valid := func(extra ...biEntry) []byte { return biContext(t, minimalConfig, extra...) }
	bigConfig := `{"description":"` + strings.Repeat("a", 2<<20) + `"}`
	truncated := valid(biFile("rootfs/big", bytes.Repeat([]byte("x"), 64<<10)))
	truncated = truncated[:len(truncated)/2]
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 8192)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	random[0] = 'r' // not the gzip magic
	badCRC := biGzip(t, valid())
	badCRC[len(badCRC)-8] ^= 0xff
	gzHeader := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

	cases := []struct {
		name, what  string
		contentType string // default application/x-tar
		body        []byte
		status      int // default 400
		msg         string
	}{
		{what: "name with ..", body: valid(biFile("rootfs/../../"+token, []byte("x"))), msg: `contains ".."`},
		{what: "top-level ..", body: valid(biFile("../"+token, []byte("x"))), msg: `contains ".."`},
		{what: "dot-dot inside rootfs", body: valid(biFile("rootfs/a/../../"+token, []byte("x"))), msg: `contains ".."`},
		{what: "symlink to / then a file through it", body: valid(
			biSymlink("rootfs/evil", "/"), biFile("rootfs/evil/tmp/"+token, []byte("x"))), msg: `rootfs/evil/tmp/` + token},
		{what: "symlink to an absolute dir then a file through it", body: valid(
			biSymlink("rootfs/evil", sent.dir), biFile("rootfs/evil/"+token, []byte("x"))), msg: `rootfs/evil/` + token},
		{what: "symlink to an absolute dir then a dir through it", body: valid(
			biSymlink("rootfs/evil", sent.dir), biDir("rootfs/evil/"+token)), msg: `rootfs/evil/` + token},
		{what: "symlink upwards then a file through it", body: valid(
			biSymlink("rootfs/up", "../../../.."), biFile("rootfs/up/"+token, []byte("x"))), msg: `rootfs/up/` + token},
		{what: "symlink upwards then a symlink through it", body: valid(
			biSymlink("rootfs/up", "../../../.."), biSymlink("rootfs/up/"+token, "/")), msg: `rootfs/up/` + token},
		{what: "hardlink to /etc/passwd", body: valid(biHardlink("rootfs/pw", "/etc/passwd")), msg: "outside rootfs/"},
		{what: "hardlink to an absolute sentinel", body: valid(biHardlink("rootfs/pw", sent.file)), msg: "outside rootfs/"},
		{what: "hardlink to rootfs/../../etc/passwd", body: valid(biHardlink("rootfs/pw", "rootfs/../../etc/passwd")), msg: `contains ".."`},
		{what: "hardlink to a symlink leaving the tree", body: valid(
			biSymlink("rootfs/s", sent.file), biHardlink("rootfs/h", "rootfs/s")), msg: "not a regular file"},
		{what: "hardlink through a symlinked dir", body: valid(
			biSymlink("rootfs/sd", sent.dir), biHardlink("rootfs/h", "rootfs/sd/sentinel")), msg: `hardlink target "rootfs/sd/sentinel"`},
		{what: "hardlink to a missing file", body: valid(biHardlink("rootfs/h", "rootfs/nosuch")), msg: `hardlink target "rootfs/nosuch"`},
		{what: "missing config.json", body: biTar(t, biDir("rootfs"), biFile("rootfs/x", []byte("x"))), msg: "config not found"},
		{what: "config.json in a sub-directory only", body: biTar(t, biFile("ctx/config.json", []byte(minimalConfig)), biDir("rootfs")), msg: "config not found"},
		{what: "missing rootfs", body: biTar(t, biFile("config.json", []byte(minimalConfig))), msg: "no rootfs found"},
		{what: "rootfs is a file", body: biTar(t, biFile("config.json", []byte(minimalConfig)), biFile("rootfs", []byte("x"))), msg: "rootfs must be a directory"},
		{what: "config.json is a directory", body: biTar(t, biDir("config.json"), biDir("rootfs")), msg: "config.json is not a regular file"},
		{what: "duplicate config.json", body: valid(biFile("./config.json", []byte(minimalConfig))), msg: "duplicate config.json"},
		{what: "config not JSON", body: biContext(t, "this is not json"), msg: "failed to parse config"},
		{what: "config truncated JSON", body: biContext(t, `{"description":"x"`), msg: "failed to parse config"},
		{what: "interface types as objects", body: biContext(t,
			`{"entrypoint":["/x"],"interface":{"socket":"s.sock","types":[{"Prefix":"docker","Capability":"volumedriver","Version":"1.0"}]}}`),
			msg: "failed to parse config"},
		{what: "socket path leaving the plugin dir", body: biContext(t, `{"entrypoint":["/x"],"interface":{"socket":"../../x.sock"}}`),
			msg: "failed to parse config"},
		{what: "config.json of 2 MiB", body: biTar(t, biFile("config.json", []byte(bigConfig)), biDir("rootfs")), msg: "config.json is"},
		{what: "whiteout name", body: valid(biFile("rootfs/.wh.x", nil)), msg: "reserved for layer whiteouts"},
		{what: "truncated tar", body: truncated, msg: "invalid tar"},
		{what: "random bytes", body: random, msg: "invalid tar"},
		{what: "JSON body", body: []byte(minimalConfig), msg: "invalid tar"},
		{what: "empty body", body: nil, msg: "config not found"},
		{what: "gzip with a bad header", body: []byte{0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3}, msg: "gzip"},
		{what: "gzip of garbage", body: append(gzHeader, bytes.Repeat([]byte{0xff}, 100)...), msg: "invalid tar"},
		{what: "gzip of a non-tar", body: biGzip(t, random), msg: "invalid tar"},
		{what: "gzip with a bad checksum", body: badCRC, msg: "invalid tar"},
		{what: "gzip truncated", body: biGzip(t, valid())[:200], msg: "invalid tar"},
		{what: "urlencoded Content-Type", contentType: "application/x-www-form-urlencoded", body: valid(), msg: "unsupported Content-Type"},
		{what: "multipart Content-Type", contentType: "multipart/form-data; boundary=x", body: valid(), msg: "unsupported Content-Type"},
		{what: "JSON Content-Type", contentType: "application/json", body: valid(), msg: "unsupported Content-Type"},
		{what: "malformed Content-Type", contentType: "application/x-tar; =", body: valid(), msg: "malformed Content-Type"},
		{what: "uppercase name", name: "Bad", body: valid(), msg: "must be lowercase"},
		{what: "digest name", name: "dig@sha256:" + strings.Repeat("0", 64), body: valid(), msg: "canonical references are not permitted"},
		{what: "tag and digest", name: "dig:1@sha256:" + strings.Repeat("0", 64), body: valid(), msg: "canonical references are not permitted"},
		{what: "empty name", name: "-", body: valid(), msg: "failed to parse reference"},
		{what: "name with a space", name: "a b", body: valid(), msg: "failed to parse reference"},
		{what: "64-hex name", name: strings.Repeat("ab", 32), body: valid(), msg: "64-byte hexadecimal"},
		{what: "taken name", name: "taken", body: valid(), status: 409, msg: "plugin taken:latest already exists"},
		{what: "taken name, other spelling", name: "docker.io/library/taken:latest", body: valid(), status: 409, msg: "plugin taken:latest already exists"},
	}
	for i, tc := range cases {
		name := tc.name
		switch name {
		case "":
			name = fmt.Sprintf("bad%d", i)
		case "-":
			name = ""
		}
		ct := tc.contentType
		if ct == "" {
			ct = "application/x-tar"
		}
		status := tc.status
		if status == 0 {
			status = 400
		}
		r := biCreate(t, d, name, ct, tc.body)
		t.Logf("%s: %d %s", tc.what, r.Status, bytes.TrimSpace(r.Body))
		if r.Status != status {
			t.Errorf("%s: %s, want %d", tc.what, r, status)
		} else if msg := wireMessage(t, r); !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: message %q, want it to contain %q", tc.what, msg, tc.msg)
		}
		biCheckClean(t, d.sock, data, "taken:latest")
		if t.Failed() {
			t.Logf("after case %q", tc.what)
		}
	}
	sent.check(t)
	biNoToken(t, d.root, token)
	if _, err := os.Lstat("/tmp/" + token); err == nil {
		t.Errorf("/tmp/%s was written", token)
	}
	var after syscall.Stat_t
	if err := syscall.Stat("/etc/passwd", &after); err != nil || after.Nlink != passwd.Nlink || after.Mtim != passwd.Mtim {
		t.Errorf("/etc/passwd changed: nlink %d -> %d", passwd.Nlink, after.Nlink)
	}
	// A missing name parameter is the empty name.
	r := wireRaw(t, d.sock, "POST", "/plugins/create", map[string]string{"Content-Type": "application/x-tar"}, valid())
	wireWantError(t, r, 400, "failed to parse reference")
	biCheckClean(t, d.sock, data, "taken:latest")
}

// TestBadInputNoWriteThrough: archives that legitimately replace a planted
// symlink must replace the link, never write through it.
func TestBadInputNoWriteThrough(t *testing.T) {
	d := startDaemon(t, "")
	data := filepath.Join(d.root, "data")
	sent := newBISentinel(t)
	replaced := biFile("rootfs/f", []byte("replaced"))
	replaced.hdr.Mode, replaced.hdr.Uid, replaced.hdr.Gid = 0o777, 4242, 4242
	dir := biDir("rootfs/dd")
	dir.hdr.Mode, dir.hdr.Uid = 0o777, 4242
	body := biContext(t, minimalConfig,
		biSymlink("rootfs/f", sent.file), replaced,
		biSymlink("rootfs/dd", sent.dir), dir, biFile("rootfs/dd/inner", []byte("in")),
		biSymlink("rootfs/abs", "/etc/passwd"),
		biFile("rootfs/a", []byte("shared")), biHardlink("rootfs/b", "rootfs/a"),
	)
	if r := biCreate(t, d, "through", "application/x-tar", body); r.Status != 204 {
		t.Fatalf("create: %s", r)
	}
	sent.check(t)
	r := wireRaw(t, d.sock, "GET", "/plugins/through/json", nil, nil)
	var p struct{ Id string }
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(data, "plugins", p.Id, "rootfs")
	if b, err := os.ReadFile(filepath.Join(rootfs, "f")); err != nil || string(b) != "replaced" {
		t.Errorf("rootfs/f: %q %v", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "f")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("rootfs/f is not a regular file: %v %v", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "dd")); err != nil || !fi.IsDir() {
		t.Errorf("rootfs/dd is not a directory: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(rootfs, "abs")); err != nil || l != "/etc/passwd" {
		t.Errorf("rootfs/abs: %q %v", l, err)
	}
	var a, b syscall.Stat_t
	if syscall.Stat(filepath.Join(rootfs, "a"), &a) != nil || syscall.Stat(filepath.Join(rootfs, "b"), &b) != nil || a.Ino != b.Ino {
		t.Errorf("rootfs/b is not a hardlink of rootfs/a")
	}
	biCheckClean(t, d.sock, data, "through:latest")
}

func TestBadInputSet(t *testing.T) {
	d := startDaemon(t, "")
	data := filepath.Join(d.root, "data")
	wireCreate(t, d, "setme", volConfig("/tmp"))
	state := func() (settings, config string) {
		t.Helper()
		r := wireRaw(t, d.sock, "GET", "/plugins/setme/json", nil, nil)
		return string(wireField(t, r.Body, "Settings")), string(wireField(t, r.Body, "Config"))
	}
	settings0, config0 := state()
	big := `["DEBUG=` + strings.Repeat("x", 2<<20) + `"]`
	for _, tc := range []struct {
		what, contentType, body string
		status                  int
		msg                     string
	}{
		{"truncated", "application/json", `["DEBUG"`, 400, "invalid JSON"},
		{"a string", "application/json", `"notarray"`, 400, "invalid JSON"},
		{"numbers", "application/json", `[1,2]`, 400, "invalid JSON"},
		{"an object", "application/json", `{"DEBUG":"1"}`, 400, "invalid JSON"},
		{"trailing data", "application/json", `["a"] x`, 400, "unexpected content after JSON"},
		{"two values", "application/json", `["DEBUG=1"] ["DEBUG=2"]`, 400, "unexpected content after JSON"},
		{"text/plain", "text/plain", `["DEBUG=1"]`, 400, "unsupported Content-Type header (text/plain)"},
		{"no Content-Type", "", `["DEBUG=1"]`, 400, "unsupported Content-Type"},
		{"urlencoded", "application/x-www-form-urlencoded", `["DEBUG=1"]`, 400, "unsupported Content-Type"},
		{"malformed Content-Type", "application/json; =", `["DEBUG=1"]`, 400, "malformed Content-Type"},
		{"2 MiB", "application/json", big, 413, "too large"},
		{"a bad item after a good one", "application/json", `["DEBUG=5","NOPE=1"]`, 400, `setting "NOPE" not found`},
		{"a mount after a bad item", "application/json", `["data.source=/var/tmp","=x"]`, 400, "invalid format"},
		{"NUL", "application/json", `["DEBUG=a\u0000b"]`, 400, "NUL"},
		{"not settable", "application/json", `["MODE=x"]`, 400, `"MODE" is not settable`},
	} {
		h := map[string]string{}
		if tc.contentType != "" {
			h["Content-Type"] = tc.contentType
		}
		r := wireRaw(t, d.sock, "POST", "/plugins/setme/set", h, []byte(tc.body))
		if r.Status != tc.status {
			t.Errorf("set %s: %s, want %d", tc.what, r, tc.status)
		} else if msg := wireMessage(t, r); !strings.Contains(msg, tc.msg) {
			t.Errorf("set %s: message %q, want %q", tc.what, msg, tc.msg)
		}
		if s, c := state(); s != settings0 || c != config0 {
			t.Errorf("set %s changed the plugin:\nsettings %s\nconfig %s", tc.what, s, c)
		}
	}
	biCheckClean(t, d.sock, data, "setme:latest")
}

func TestBadInputConcurrentCreate(t *testing.T) {
	d := startDaemon(t, "")
	data := filepath.Join(d.root, "data")
	body := biContext(t, volConfig("/tmp"), biFile("rootfs/pad", bytes.Repeat([]byte("p"), 256<<10)))
	const n = 50
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]wireResp, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = wireRawErr(d.sock, "POST", "/plugins/create?name=race",
				map[string]string{"Content-Type": "application/x-tar"}, body)
		})
	}
	close(start)
	wg.Wait()
	counts := map[int]int{}
	for i, r := range results {
		if errs[i] != nil {
			t.Errorf("request %d: %v", i, errs[i])
			continue
		}
		counts[r.Status]++
		switch r.Status {
		case http.StatusNoContent:
		case http.StatusConflict:
			if msg := wireMessage(t, r); msg != "plugin race:latest already exists" {
				t.Errorf("request %d: 409 %q", i, msg)
			}
		default:
			t.Errorf("request %d: %s", i, r)
		}
	}
	if counts[204] != 1 || counts[409] != n-1 {
		t.Errorf("statuses %v, want one 204 and %d 409", counts, n-1)
	}
	biCheckClean(t, d.sock, data, "race:latest")
}

// TestBadInputConcurrentSameContent: many creates of byte-identical content
// under different names all succeed and share their blobs; concurrent
// removes then leave nothing behind.
func TestBadInputConcurrentSameContent(t *testing.T) {
	d := startDaemon(t, "")
	data := filepath.Join(d.root, "data")
	body := biTar(t, biFile("config.json", []byte(minimalConfig)), biDir("rootfs"), biFile("rootfs/same", []byte("same")))
	const n = 20
	var wg sync.WaitGroup
	results, errs := make([]wireResp, n), make([]error, n)
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("same%d:latest", i))
		wg.Go(func() {
			results[i], errs[i] = wireRawErr(d.sock, "POST", fmt.Sprintf("/plugins/create?name=same%d", i),
				map[string]string{"Content-Type": "application/x-tar"}, body)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || results[i].Status != 204 {
			t.Errorf("create same%d: %v %s", i, errs[i], results[i])
		}
	}
	biCheckClean(t, d.sock, data, names...)
	if bl, _ := os.ReadDir(filepath.Join(data, "blobs", "sha256")); len(bl) != 3 {
		t.Errorf("identical plugins hold %d blobs, want 3 shared ones (layer, config, manifest)", len(bl))
	}
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = wireRawErr(d.sock, "DELETE", fmt.Sprintf("/plugins/same%d", i), nil, nil)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || results[i].Status != 200 {
			t.Errorf("remove same%d: %v %s", i, errs[i], results[i])
		}
	}
	biCheckClean(t, d.sock, data)
}
