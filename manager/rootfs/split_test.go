package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

const testConfig = `{"Description":"test plugin","Interface":{"Types":["docker.volumedriver/1.0"],"Socket":"p.sock"}}`

// sampleRootfs is a rootfs exercising every supported kind of entry.
func sampleRootfs(prefix string) []ent {
	p := func(s string) string { return prefix + s }
	return []ent{
		dir(p("rootfs/")),
		withMode(dir(p("rootfs/bin")), 0o750),
		withOwner(withMode(file(p("rootfs/bin/tool"), "#!/bin/sh\necho hi\n"), 0o4755), 1000, 1001),
		symlink(p("rootfs/bin/sh"), "/bin/busybox"),
		hardlink(p("rootfs/bin/tool2"), p("rootfs/bin/tool")),
		file(p("rootfs/etc/hosts"), "127.0.0.1 localhost\n"), // parent implied
		withMode(dir(p("rootfs/tmp")), 0o1777),
		device(p("rootfs/dev/null"), tar.TypeChar),
		device(p("rootfs/run/fifo"), tar.TypeFifo),
		withPAX(file(p("rootfs/xattr"), "x"), "SCHILY.xattr.user.test", "value"),
		file(p("rootfs/empty"), ""),
	}
}

// sampleLayer is what the layer of sampleRootfs must hold.
var sampleLayer = []layerEntry{
	{Name: "bin/", Type: tar.TypeDir, Mode: 0o750},
	{Name: "bin/tool", Type: tar.TypeReg, Mode: 0o4755, Body: "#!/bin/sh\necho hi\n"},
	{Name: "bin/sh", Type: tar.TypeSymlink, Mode: 0o644, Link: "/bin/busybox"},
	{Name: "bin/tool2", Type: tar.TypeLink, Mode: 0o644, Link: "bin/tool"},
	{Name: "etc/hosts", Type: tar.TypeReg, Mode: 0o644, Body: "127.0.0.1 localhost\n"},
	{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
	{Name: "dev/null", Type: tar.TypeChar, Mode: 0o644},
	{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o644},
	{Name: "xattr", Type: tar.TypeReg, Mode: 0o644, Body: "x"},
	{Name: "empty", Type: tar.TypeReg, Mode: 0o644},
}

func concat(parts ...[]ent) []ent {
	var out []ent
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestSplitHappy(t *testing.T) {
	tests := []struct {
		name  string
		input func(t *testing.T) []byte
	}{
		{"config first", func(t *testing.T) []byte {
			return makeTar(t, concat([]ent{configEnt(testConfig)}, sampleRootfs(""))...)
		}},
		{"config last", func(t *testing.T) []byte {
			return makeTar(t, concat(sampleRootfs(""), []ent{configEnt(testConfig)})...)
		}},
		{"config in the middle", func(t *testing.T) []byte {
			r := sampleRootfs("")
			return makeTar(t, concat(r[:4], []ent{configEnt(testConfig)}, r[4:])...)
		}},
		{"dot-slash prefix", func(t *testing.T) []byte {
			return makeTar(t, concat([]ent{dir("./"), file("./config.json", testConfig)}, sampleRootfs("./"))...)
		}},
		{"slash prefix", func(t *testing.T) []byte {
			return makeTar(t, concat([]ent{file("/config.json", testConfig)}, sampleRootfs("/"))...)
		}},
		{"gzip", func(t *testing.T) []byte {
			return gzipped(t, makeTar(t, concat([]ent{configEnt(testConfig)}, sampleRootfs(""))...))
		}},
		{"ignored entries", func(t *testing.T) []byte {
			return makeTar(t, concat([]ent{
				file("README", "hello"),
				dir("ctx"),
				file("ctx/config.json", "not the config"),
				file("rootfsx/file", "not in rootfs"),
				symlink("link", "/etc"),
				{name: "pax_global_header", typ: tar.TypeXGlobalHeader, pax: map[string]string{"comment": "x"}},
				configEnt(testConfig),
			}, sampleRootfs(""))...)
		}},
	}
	var firstLayer []byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			input := tt.input(t)
			var layer bytes.Buffer
			cfg, err := Split(t.Context(), bytes.NewReader(input), s.dir, &layer)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if string(cfg) != testConfig {
				t.Errorf("config = %q", cfg)
			}
			checkSampleTree(t, s.dir)
			s.check(t)
			if diff := cmp.Diff(sampleLayer, readLayer(t, layer.Bytes())); diff != "" {
				t.Errorf("layer entries (-want +got):\n%s", diff)
			}
			// The layer depends on the rootfs entries only, not on the
			// prefixes, compression or position of config.json.
			if firstLayer == nil {
				firstLayer = layer.Bytes()
			} else if !bytes.Equal(firstLayer, layer.Bytes()) {
				t.Errorf("layer differs from the first case's")
			}
		})
	}
}

// checkSampleTree verifies what sampleRootfs extracts to.
func checkSampleTree(t *testing.T, dir string) {
	t.Helper()
	at := func(p string) string { return filepath.Join(dir, p) }
	lstat := func(p string) fs.FileInfo {
		t.Helper()
		fi, err := os.Lstat(at(p))
		if err != nil {
			t.Fatalf("lstat %s: %v", p, err)
		}
		return fi
	}
	wantFile := func(p, body string, mode fs.FileMode) {
		t.Helper()
		fi := lstat(p)
		if !fi.Mode().IsRegular() || fi.Mode() != mode {
			t.Errorf("%s: mode %v, want regular %v", p, fi.Mode(), mode)
		}
		if b, _ := os.ReadFile(at(p)); string(b) != body {
			t.Errorf("%s: content %q, want %q", p, b, body)
		}
		if !fi.ModTime().Equal(testTime) {
			t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), testTime)
		}
	}
	wantDir := func(p string, mode fs.FileMode) {
		t.Helper()
		fi := lstat(p)
		if fi.Mode() != fs.ModeDir|mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), fs.ModeDir|mode)
		}
		if !fi.ModTime().Equal(testTime) {
			t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), testTime)
		}
	}

	wantDir("bin", 0o750)
	wantDir("tmp", 0o777|fs.ModeSticky)
	wantFile("bin/tool", "#!/bin/sh\necho hi\n", 0o755|fs.ModeSetuid)
	wantFile("etc/hosts", "127.0.0.1 localhost\n", 0o644)
	wantFile("xattr", "x", 0o644)
	wantFile("empty", "", 0o644)

	if target, err := os.Readlink(at("bin/sh")); err != nil || target != "/bin/busybox" {
		t.Errorf("bin/sh -> %q (%v), want /bin/busybox", target, err)
	}
	if !os.SameFile(lstat("bin/tool"), lstat("bin/tool2")) {
		t.Errorf("bin/tool2 is not a hardlink of bin/tool")
	}
	if os.Geteuid() == 0 {
		st := lstat("bin/tool").Sys().(*syscall.Stat_t)
		if st.Uid != 1000 || st.Gid != 1001 {
			t.Errorf("bin/tool owner %d:%d, want 1000:1001", st.Uid, st.Gid)
		}
	}
	for _, p := range []string{"dev", "run"} {
		if _, err := os.Lstat(at(p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists (%v): devices and FIFOs must not be created", p, err)
		}
	}
	if got := dirNames(t, dir); !cmp.Equal(got, []string{"bin", "empty", "etc", "tmp", "xattr"}) {
		t.Errorf("rootfs holds %q", got)
	}
}

func TestSplitMinimal(t *testing.T) {
	tests := []struct {
		name    string
		entries []ent
	}{
		{"rootfs dir", []ent{configEnt("{}"), dir("rootfs")}},
		{"rootfs dir with slash", []ent{dir("rootfs/"), configEnt("{}")}},
		{"dot-slash rootfs dir", []ent{dir("./rootfs/"), file("./config.json", "{}")}},
		{"rootfs entry without the dir entry", []ent{configEnt("{}"), file("rootfs/a", "a")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			var layer bytes.Buffer
			cfg, err := Split(t.Context(), bytes.NewReader(makeTar(t, tt.entries...)), s.dir, &layer)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if string(cfg) != "{}" {
				t.Errorf("config = %q", cfg)
			}
			readLayer(t, layer.Bytes())
			s.check(t)
		})
	}
}

func TestSplitEmptyConfig(t *testing.T) {
	s := newSandbox(t)
	cfg, err := Split(t.Context(), bytes.NewReader(makeTar(t, configEnt(""), dir("rootfs"))), s.dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil || len(cfg) != 0 {
		t.Errorf("config = %#v, want empty non-nil", cfg)
	}
}

func TestSplitDeterministic(t *testing.T) {
	input := makeTar(t, concat([]ent{configEnt(testConfig)}, sampleRootfs(""),
		[]ent{withPAX(file("rootfs/more", "m"), "SCHILY.xattr.user.b", "2")})...)
	var layers [2]bytes.Buffer
	for i := range layers {
		s := newSandbox(t)
		if _, err := Split(t.Context(), bytes.NewReader(input), s.dir, &layers[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(layers[0].Bytes(), layers[1].Bytes()) {
		t.Fatal("two splits of the same input produced different layers")
	}
	// The xattr record survives into the layer.
	tr := tar.NewReader(bytes.NewReader(layers[0].Bytes()))
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("xattr entry not found in layer: %v", err)
		}
		if hdr.Name == "more" {
			if got := hdr.PAXRecords["SCHILY.xattr.user.b"]; got != "2" {
				t.Errorf("xattr record = %q", got)
			}
			break
		}
	}
}

// TestSplitReplace covers entries landing on paths that already exist.
func TestSplitReplace(t *testing.T) {
	s := newSandbox(t)
	input := makeTar(t,
		configEnt("{}"),
		file("rootfs/a", "old"),
		file("rootfs/a", "new"), // file over file
		dir("rootfs/d"),
		file("rootfs/d/child", "c"),
		withMode(dir("rootfs/d"), 0o700), // dir over dir keeps children
		file("rootfs/f", "file"),
		dir("rootfs/f"), // dir over file
		dir("rootfs/g"),
		file("rootfs/g/x", "x"),
		symlink("rootfs/g", "d"), // symlink over dir
		symlink("rootfs/s", "/nowhere"),
		file("rootfs/s", "real"), // file over symlink
		symlink("rootfs/s2", "../sentinel"),
		withMode(dir("rootfs/s2"), 0o777), // dir over symlink, not through it
	)
	if _, err := Split(t.Context(), bytes.NewReader(input), s.dir, io.Discard); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(s.dir, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
		return string(b)
	}
	if got := read("a"); got != "new" {
		t.Errorf("a = %q", got)
	}
	if got := read("d/child"); got != "c" {
		t.Errorf("d/child = %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(s.dir, "d")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("d: %v %v", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(s.dir, "f")); err != nil || !fi.IsDir() {
		t.Errorf("f: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(s.dir, "g")); err != nil || target != "d" {
		t.Errorf("g -> %q %v", target, err)
	}
	if got := read("s"); got != "real" {
		t.Errorf("s = %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(s.dir, "s2")); err != nil || fi.Mode() != fs.ModeDir|0o777 {
		t.Errorf("s2: %v %v", fi, err)
	}
	s.check(t)
}

// hostileCase builds its input knowing where the sandbox is, so it can aim
// at the sentinel directory.
type hostileCase struct {
	name  string
	input func(t *testing.T, s sandbox) []byte
	want  string // substring of the error message
}

func tarCase(name, want string, entries ...ent) hostileCase {
	return hostileCase{name: name, want: want, input: func(t *testing.T, _ sandbox) []byte { return makeTar(t, entries...) }}
}

func TestSplitHostile(t *testing.T) {
	cfg := configEnt("{}")
	root := dir("rootfs/")
	valid := func(t *testing.T) []byte {
		return makeTar(t, cfg, root, file("rootfs/big", strings.Repeat("x", 10000)))
	}
	tests := []hostileCase{
		tarCase("dotdot inside rootfs", `".."`, cfg, root, file("rootfs/../x", "x")),
		tarCase("dotdot before rootfs", `".."`, cfg, file("../rootfs/x", "x")),
		tarCase("dotdot deep", `".."`, cfg, root, file("rootfs/../../etc/x", "x")),
		tarCase("dotdot dir", `".."`, cfg, root, dir("rootfs/a/../../..")),
		tarCase("dotdot ignored entry", `".."`, cfg, root, file("ctx/../../x", "x")),
		tarCase("symlink to /etc then write through it", "rootfs/evil/passwd",
			cfg, root, symlink("rootfs/evil", "/etc"), file("rootfs/evil/passwd", "root::0:0::/:/bin/sh\n")),
		{name: "absolute symlink to sentinel then write through it", want: "rootfs/evil/pwned", input: func(t *testing.T, s sandbox) []byte {
			return makeTar(t, cfg, root, symlink("rootfs/evil", s.sentinel), file("rootfs/evil/pwned", "x"))
		}},
		{name: "absolute symlink to sentinel then overwrite", want: "rootfs/evil/keep", input: func(t *testing.T, s sandbox) []byte {
			return makeTar(t, cfg, root, symlink("rootfs/evil", s.sentinel), file("rootfs/evil/keep", "x"))
		}},
		tarCase("relative symlink up then write", "rootfs/up/x",
			cfg, root, symlink("rootfs/up", "../../.."), file("rootfs/up/x", "x")),
		tarCase("relative symlink to sentinel then overwrite", "rootfs/s/keep",
			cfg, root, symlink("rootfs/s", "../sentinel"), file("rootfs/s/keep", "x")),
		tarCase("relative symlink to sentinel then mkdir", "rootfs/s/sub",
			cfg, root, symlink("rootfs/s", "../sentinel"), dir("rootfs/s/sub")),
		tarCase("relative symlink to sentinel then symlink", "rootfs/s/l",
			cfg, root, symlink("rootfs/s", "../sentinel"), symlink("rootfs/s/l", "/x")),
		tarCase("nested symlinks escaping", "rootfs/b/c/x",
			cfg, root, dir("rootfs/a"), symlink("rootfs/a/up", "../.."), symlink("rootfs/b", "a/up"), file("rootfs/b/c/x", "x")),
		tarCase("device through escaping symlink", "rootfs/s/null",
			cfg, root, symlink("rootfs/s", "../sentinel"), device("rootfs/s/null", tar.TypeChar)),
		tarCase("hardlink through escaping symlink", "rootfs/s/keep",
			cfg, root, symlink("rootfs/s", "../sentinel"), hardlink("rootfs/h", "rootfs/s/keep")),
		tarCase("hardlink to ../../etc/passwd", `".."`, cfg, root, hardlink("rootfs/h", "rootfs/../../etc/passwd")),
		tarCase("hardlink to /etc/passwd", "outside rootfs/", cfg, root, hardlink("rootfs/h", "/etc/passwd")),
		tarCase("hardlink to missing file", "rootfs/nope", cfg, root, hardlink("rootfs/h", "rootfs/nope")),
		tarCase("hardlink without rootfs prefix", "outside rootfs/", cfg, root, file("rootfs/a", "a"), hardlink("rootfs/h", "a")),
		tarCase("hardlink to config.json", "outside rootfs/", cfg, root, hardlink("rootfs/h", "config.json")),
		tarCase("hardlink to directory", "not a regular file", cfg, root, dir("rootfs/d"), hardlink("rootfs/h", "rootfs/d")),
		tarCase("hardlink to rootfs root", "not a regular file", cfg, root, hardlink("rootfs/h", "rootfs/")),
		tarCase("hardlink to escaping symlink", "not a regular file", cfg, root, symlink("rootfs/s", "/etc/passwd"), hardlink("rootfs/h", "rootfs/s")),
		tarCase("hardlink to itself", "itself", cfg, root, file("rootfs/h", "h"), hardlink("rootfs/h", "rootfs/h")),
		tarCase("config too big", "more than the 1048576 allowed", configEnt(strings.Repeat(" ", 2<<20)), root),
		tarCase("duplicate config", "duplicate config.json", cfg, root, file("./config.json", "{}")),
		tarCase("config is a directory", "not a regular file", dir("config.json"), root),
		tarCase("config is a symlink", "not a regular file", symlink("config.json", "/etc/passwd"), root),
		tarCase("missing config", "config not found", root, file("rootfs/a", "a")),
		tarCase("missing rootfs", "no rootfs found", cfg, file("README", "x")),
		tarCase("empty archive", "config not found"),
		tarCase("rootfs is a file", "rootfs must be a directory", cfg, file("rootfs", "x")),
		tarCase("rootfs is a symlink", "rootfs must be a directory", cfg, symlink("rootfs", "/")),
		tarCase("whiteout in rootfs", "whiteout", cfg, root, file("rootfs/.wh.x", "")),
		tarCase("opaque whiteout in rootfs", "whiteout", cfg, root, file("rootfs/d/.wh..wh..opq", "")),
		tarCase("unsupported type", "unsupported type", cfg, root, raw("rootfs/c", tar.TypeCont, "")),
		tarCase("name too long", "longer than 4096", cfg, root, file("rootfs/"+strings.Repeat("a/", 2100)+"f", "x")),
		tarCase("parent is a file", "rootfs/a/b", cfg, root, file("rootfs/a", "a"), file("rootfs/a/b", "b")),
		tarCase("symlink loop", "rootfs/l/x", cfg, root, symlink("rootfs/l", "l"), file("rootfs/l/x", "x")),
		{name: "truncated tar", want: "invalid tar", input: func(t *testing.T, _ sandbox) []byte {
			b := valid(t)
			return b[:512+5000] // header of config, its body block, then cut in rootfs/big
		}},
		{name: "truncated gzip", want: "invalid tar", input: func(t *testing.T, _ sandbox) []byte {
			b := gzipped(t, valid(t))
			return b[:len(b)/2]
		}},
		{name: "gzip with bad checksum", want: "invalid tar", input: func(t *testing.T, _ sandbox) []byte {
			b := gzipped(t, valid(t))
			b[len(b)-6] ^= 0xff // CRC-32 field of the trailer
			return b
		}},
		{name: "gzip magic only", want: "invalid tar", input: func(t *testing.T, _ sandbox) []byte {
			return []byte{0x1f, 0x8b}
		}},
		{name: "random garbage", want: "invalid tar", input: func(t *testing.T, _ sandbox) []byte {
			b := make([]byte, 4096)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return b
		}},
		{name: "short garbage", want: "invalid tar", input: func(t *testing.T, _ sandbox) []byte {
			return []byte("hello, world")
		}},
		{name: "bzip2 body", want: "bzip2", input: func(t *testing.T, _ sandbox) []byte {
			return append([]byte("BZh91AY&SY"), bytes.Repeat([]byte{0x5a}, 1000)...)
		}},
		{name: "json body", want: "JSON", input: func(t *testing.T, _ sandbox) []byte {
			return []byte(strings.Repeat(`{"Description":"x"}`, 40))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := Split(t.Context(), bytes.NewReader(tt.input(t, s)), s.dir, io.Discard)
			if err == nil {
				t.Fatal("Split succeeded")
			}
			t.Logf("error: %v", err)
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %q (%T) is not invalid argument", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			s.check(t)
		})
	}
}

// TestSplitNotClientErrors checks failures that must not be blamed on the
// client.
func TestSplitNotClientErrors(t *testing.T) {
	errBoom := errors.New("boom")
	input := makeTar(t, configEnt("{}"), dir("rootfs"), file("rootfs/big", strings.Repeat("x", 200<<10)))

	t.Run("layer writer fails", func(t *testing.T) {
		s := newSandbox(t)
		_, err := Split(t.Context(), bytes.NewReader(input), s.dir, failingWriter{errBoom})
		if !errors.Is(err, errBoom) || errdefs.IsInvalidArgument(err) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("body read fails", func(t *testing.T) {
		s := newSandbox(t)
		r := io.MultiReader(bytes.NewReader(input[:3000]), iotest.ErrReader(errBoom))
		_, err := Split(t.Context(), r, s.dir, io.Discard)
		if !errors.Is(err, errBoom) || errdefs.IsInvalidArgument(err) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("context cancelled before", func(t *testing.T) {
		s := newSandbox(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := Split(ctx, bytes.NewReader(input), s.dir, io.Discard)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("context cancelled during a file", func(t *testing.T) {
		s := newSandbox(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &cancelAfter{r: bytes.NewReader(input), n: 100 << 10, cancel: cancel}
		_, err := Split(ctx, r, s.dir, io.Discard)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("disk errors", func(t *testing.T) {
		for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO, syscall.EDQUOT} {
			err := fsError("x", &fs.PathError{Op: "write", Path: "x", Err: errno})
			if errdefs.IsInvalidArgument(err) || !errors.Is(err, errno) {
				t.Errorf("%v: err = %v", errno, err)
			}
		}
		for _, errno := range []syscall.Errno{syscall.ENOTDIR, syscall.EEXIST, syscall.ELOOP} {
			if err := fsError("x", &fs.PathError{Op: "open", Path: "x", Err: errno}); !errdefs.IsInvalidArgument(err) {
				t.Errorf("%v: err = %v", errno, err)
			}
		}
	})
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// cancelAfter cancels a context once n bytes have been read through it.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// TestSplitUnprivileged pretends not to be root: failing chowns are then
// ignored rather than reported.
func TestSplitUnprivileged(t *testing.T) {
	if os.Geteuid() == 0 {
		old := geteuid
		geteuid = func() int { return 1000 }
		t.Cleanup(func() { geteuid = old })
	}
	if err := lchownError(&fs.PathError{Op: "chown", Err: syscall.EPERM}); err != nil {
		t.Errorf("EPERM not ignored when unprivileged: %v", err)
	}
}
