package rootfs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"
)

// testTime is the mtime given to test entries unless they set their own.
var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// ent describes one entry of a test archive.
type ent struct {
	name  string
	typ   byte // tar.TypeReg when zero
	body  string
	mode  int64 // 0o644 (files) or 0o755 (dirs) when zero
	link  string
	uid   int
	gid   int
	mtime time.Time
	pax   map[string]string
}

func file(name, body string) ent              { return ent{name: name, body: body} }
func dir(name string) ent                     { return ent{name: name, typ: tar.TypeDir} }
func symlink(name, target string) ent         { return ent{name: name, typ: tar.TypeSymlink, link: target} }
func hardlink(name, target string) ent        { return ent{name: name, typ: tar.TypeLink, link: target} }
func withMode(e ent, mode int64) ent          { e.mode = mode; return e }
func withOwner(e ent, uid, gid int) ent       { e.uid, e.gid = uid, gid; return e }
func configEnt(body string) ent               { return file("config.json", body) }
func withPAX(e ent, k, v string) ent          { e.pax = map[string]string{k: v}; return e }
func device(name string, typ byte) ent        { return ent{name: name, typ: typ} }
func raw(name string, typ byte, b string) ent { return ent{name: name, typ: typ, body: b} }

// makeTar builds an uncompressed tar of entries.
func makeTar(t testing.TB, entries ...ent) []byte {
	t.Helper()
	b, err := buildTar(entries)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tryMakeTar is makeTar for fuzzing, where archive/tar may refuse input.
func tryMakeTar(entries []ent) ([]byte, bool) {
	b, err := buildTar(entries)
	return b, err == nil
}

func buildTar(entries []ent) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:       e.name,
			Typeflag:   e.typ,
			Linkname:   e.link,
			Mode:       e.mode,
			Uid:        e.uid,
			Gid:        e.gid,
			ModTime:    e.mtime,
			PAXRecords: e.pax,
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			hdr = &tar.Header{Name: e.name, Typeflag: e.typ, PAXRecords: e.pax}
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 && hdr.Typeflag != tar.TypeXGlobalHeader {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.ModTime.IsZero() && hdr.Typeflag != tar.TypeXGlobalHeader {
			hdr.ModTime = testTime
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("writing test header %q: %w", e.name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil && hdr.Typeflag == tar.TypeReg {
			return nil, fmt.Errorf("writing test body %q: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a parent directory holding the extraction target "rootfs"
// and a sibling "sentinel" directory that extraction must never touch.
type sandbox struct {
	parent, dir, sentinel string
}

const sentinelContent = "do not touch"

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	parent, err := os.MkdirTemp("", "rootfs-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { forceRemoveAll(t, parent) })
	s := sandbox{
		parent:   parent,
		dir:      filepath.Join(parent, "rootfs"),
		sentinel: filepath.Join(parent, "sentinel"),
	}
	for _, d := range []string{s.dir, s.sentinel} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.sentinel, "keep"), []byte(sentinelContent), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// forceRemoveAll removes a tree even when extraction left read-only
// directories in it and the test does not run as root.
func forceRemoveAll(t testing.TB, p string) {
	t.Helper()
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(p); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// check fails the test if anything outside s.dir changed: the parent must
// hold exactly rootfs and sentinel, and sentinel exactly its one file.
func (s sandbox) check(t testing.TB) {
	t.Helper()
	if got := dirNames(t, s.parent); !slices.Equal(got, []string{"rootfs", "sentinel"}) {
		t.Errorf("parent directory now holds %q", got)
	}
	if got := dirNames(t, s.sentinel); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("sentinel directory now holds %q", got)
	}
	fi, err := os.Lstat(filepath.Join(s.sentinel, "keep"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("sentinel file changed: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.sentinel, "keep")); string(b) != sentinelContent {
		t.Errorf("sentinel content changed to %q", b)
	}
	if fi, err := os.Lstat(s.sentinel); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("sentinel directory changed: %v %v", fi, err)
	}
}

func dirNames(t testing.TB, p string) []string {
	t.Helper()
	des, err := os.ReadDir(p)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	sort.Strings(names)
	return names
}

// layerEntry is a re-read layer entry.
type layerEntry struct {
	Name, Link string
	Type       byte
	Mode       int64
	Body       string
}

// readLayer parses a layer tar completely.
func readLayer(t testing.TB, b []byte) []layerEntry {
	t.Helper()
	entries, err := parseLayer(b)
	if err != nil {
		t.Fatalf("layer does not parse: %v", err)
	}
	return entries
}

func parseLayer(b []byte) ([]layerEntry, error) {
	tr := tar.NewReader(bytes.NewReader(b))
	var out []layerEntry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out = append(out, layerEntry{Name: hdr.Name, Link: hdr.Linkname, Type: hdr.Typeflag, Mode: hdr.Mode, Body: string(body)})
	}
}
