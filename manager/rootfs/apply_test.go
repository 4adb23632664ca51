package rootfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

// treeOf lists dir as "path" for directories (with a trailing slash),
// "path=content" for files and "path->target" for symlinks.
func treeOf(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
		case d.IsDir():
			out = append(out, rel+"/")
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, rel+"->"+target)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestApplyWhiteouts(t *testing.T) {
	lower := makeTar(t,
		dir("./"),
		dir("a"),
		file("a/x", "x"),
		file("a/y", "old y"),
		dir("a/sub"),
		file("a/sub/z", "z"),
		dir("a/keepdir"),
		file("a/keepdir/old", "old"),
		file("keep", "keep"),
		file("gone", "gone"),
		dir("gonedir"),
		file("gonedir/f", "f"),
		dir("d"),
		file("d/old", "old"),
		file("d/stay", "stay"),
		file("hl-src", "shared"),
	)
	upper := makeTar(t,
		file(".wh.gone", ""),
		file(".wh.gonedir", ""),
		file("a/new-before", "nb"),
		file("a/keepdir/new", "new"), // implies a/keepdir, which must survive
		file("a/.wh..wh..opq", ""),
		file("a/y", "new y"),
		dir("a/sub/"),
		file("a/sub/w", "w"),
		file("d/.wh.old", ""),
		file("d/.wh..wh.plnk", ""), // AUFS metadata: ignored
		file("/d/.wh.never-existed", ""),
		file("nowhere/.wh..wh..opq", ""),
		hardlink("hl", "hl-src"),
	)
	s := newSandbox(t)
	for i, layer := range [][]byte{lower, upper} {
		if err := Apply(t.Context(), bytes.NewReader(layer), s.dir); err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
	}
	want := []string{
		"a/",
		"a/keepdir/",
		"a/keepdir/new=new",
		"a/new-before=nb",
		"a/sub/",
		"a/sub/w=w",
		"a/y=new y",
		"d/",
		"d/stay=stay",
		"hl-src=shared",
		"hl=shared",
		"keep=keep",
	}
	if diff := cmp.Diff(want, treeOf(t, s.dir)); diff != "" {
		t.Errorf("tree after layers (-want +got):\n%s", diff)
	}
	a, _ := os.Lstat(filepath.Join(s.dir, "hl"))
	b, _ := os.Lstat(filepath.Join(s.dir, "hl-src"))
	if !os.SameFile(a, b) {
		t.Errorf("hl is not a hardlink of hl-src")
	}
	s.check(t)
}

func TestApplyOpaqueRoot(t *testing.T) {
	s := newSandbox(t)
	for _, layer := range [][]byte{
		makeTar(t, file("a", "a"), dir("b"), file("b/c", "c")),
		makeTar(t, file("n", "n"), file(".wh..wh..opq", ""), file("m", "m")),
	} {
		if err := Apply(t.Context(), bytes.NewReader(layer), s.dir); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"m=m", "n=n"}, treeOf(t, s.dir)); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
	s.check(t)
}

func TestApplyHostile(t *testing.T) {
	tests := []hostileCase{
		tarCase("dotdot", `".."`, file("../x", "x")),
		tarCase("dotdot deep", `".."`, file("a/../../x", "x")),
		tarCase("dotdot to sentinel", `".."`, file("../sentinel/keep", "x")),
		tarCase("dotdot whiteout", `".."`, file("../sentinel/.wh.keep", "")),
		tarCase("whiteout of dotdot", "invalid whiteout", file(".wh..", "")),
		tarCase("empty whiteout", "invalid whiteout", file("a/.wh.", "")),
		tarCase("symlink then write through it", "s/keep", symlink("s", "../sentinel"), file("s/keep", "x")),
		tarCase("symlink then whiteout through it", "s/.wh.keep", symlink("s", "../sentinel"), file("s/.wh.keep", "")),
		{name: "absolute symlink then whiteout through it", want: "s/.wh.keep", input: func(t *testing.T, s sandbox) []byte {
			t.Helper()
			return makeTar(t, symlink("s", s.sentinel), file("s/.wh.keep", ""))
		}},
		tarCase("hardlink outside", `".."`, hardlink("h", "../sentinel/keep")),
		tarCase("hardlink missing", "nope", hardlink("h", "nope")),
		tarCase("root is a file", "must be a directory", file(".", "")),
		{name: "truncated", want: "invalid tar", input: func(t *testing.T, _ sandbox) []byte {
			t.Helper()
			return makeTar(t, file("x", strings.Repeat("x", 2000)))[:1000]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			err := Apply(t.Context(), bytes.NewReader(tt.input(t, s)), s.dir)
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			t.Logf("error: %v", err)
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %q is not invalid argument", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			s.check(t)
		})
	}
}

// An opaque whiteout in a directory that is a symlink (even one leading
// out of the tree) hides nothing and touches nothing.
func TestApplyOpaqueThroughSymlink(t *testing.T) {
	s := newSandbox(t)
	layer := makeTar(t, symlink("s", s.sentinel), symlink("r", "../sentinel"), file("s/.wh..wh..opq", ""), file("r/.wh..wh..opq", ""))
	if err := Apply(t.Context(), bytes.NewReader(layer), s.dir); err != nil {
		t.Fatal(err)
	}
	s.check(t)
}

// TestApplySplitLayer applies what Split produced and expects the same
// tree Split extracted.
func TestApplySplitLayer(t *testing.T) {
	split := newSandbox(t)
	var layer bytes.Buffer
	input := makeTar(t, concat([]ent{configEnt("{}")}, sampleRootfs(""))...)
	if _, err := Split(t.Context(), bytes.NewReader(input), split.dir, &layer); err != nil {
		t.Fatal(err)
	}
	applied := newSandbox(t)
	if err := Apply(t.Context(), &layer, applied.dir); err != nil {
		t.Fatal(err)
	}
	checkSampleTree(t, applied.dir)
	if diff := cmp.Diff(treeOf(t, split.dir), treeOf(t, applied.dir)); diff != "" {
		t.Errorf("trees differ (-split +apply):\n%s", diff)
	}
}

// TestBigFiles: files from directMinSize up are written around the page
// cache (package directio); their content, mode and mtime must come out as
// for small ones, through Split and through Apply of its layer.
func TestBigFiles(t *testing.T) {
	sizes := []int{directMinSize - 1, directMinSize, directMinSize + 1, 3*directMinSize + 4321}
	ents := []ent{configEnt("{}"), dir("rootfs")}
	want := map[string]string{}
	for i, n := range sizes {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(j*7 + i)
		}
		name := fmt.Sprintf("big%d", i)
		want[name] = string(b)
		ents = append(ents, withMode(file("rootfs/"+name, string(b)), 0o751))
	}
	split := newSandbox(t)
	var layer bytes.Buffer
	if _, err := Split(t.Context(), bytes.NewReader(makeTar(t, ents...)), split.dir, &layer); err != nil {
		t.Fatal(err)
	}
	applied := newSandbox(t)
	if err := Apply(t.Context(), &layer, applied.dir); err != nil {
		t.Fatal(err)
	}
	for _, s := range []sandbox{split, applied} {
		for name, body := range want {
			p := filepath.Join(s.dir, name)
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != body {
				t.Errorf("%s: %d bytes, want %d; content differs", p, len(got), len(body))
			}
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o751 {
				t.Errorf("%s: mode %v (%v), want 0751", p, fi.Mode(), err)
			}
		}
		s.check(t)
	}
}
