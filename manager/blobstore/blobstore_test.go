package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
)

func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "blobs")
	s, err := Open(root)
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	return s, root
}

// listDir returns the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir(%s): %v", dir, err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// walk returns every committed digest, sorted.
func walk(t *testing.T, s *Store) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	if err := s.Walk(t.Context(), func(d digest.Digest) error {
		out = append(out, d)
		return nil
	}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	slices.Sort(out)
	return out
}

func commit(t *testing.T, s *Store, content string) digest.Digest {
	t.Helper()
	w, err := s.Writer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, content); err != nil {
		t.Fatal(err)
	}
	d, err := w.Commit(t.Context(), "")
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return d
}

func TestWriterCommit(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
	}{
		{name: "empty", chunks: nil},
		{name: "one write", chunks: []string{"hello"}},
		{name: "several writes", chunks: []string{"hel", "", "lo ", "world"}},
		{name: "large", chunks: []string{strings.Repeat("x", 1<<20), strings.Repeat("y", 12345)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, root := openStore(t)
			ctx := t.Context()
			want := strings.Join(tt.chunks, "")
			wantDigest := digest.FromString(want)

			w, err := s.Writer(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			for _, c := range tt.chunks {
				m, err := w.Write([]byte(c))
				if err != nil || m != len(c) {
					t.Fatalf("Write = (%d, %v), want (%d, nil)", m, err, len(c))
				}
				n += int64(m)
				if w.Size() != n {
					t.Errorf("Size = %d after %d bytes", w.Size(), n)
				}
			}
			if w.Digest() != wantDigest {
				t.Errorf("Digest before Commit = %s, want %s", w.Digest(), wantDigest)
			}
			if len(listDir(t, filepath.Join(root, "ingest"))) != 1 {
				t.Errorf("ingest holds %v while writing, want one file", listDir(t, filepath.Join(root, "ingest")))
			}
			got, err := w.Commit(ctx, wantDigest)
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if got != wantDigest {
				t.Errorf("Commit = %s, want %s", got, wantDigest)
			}
			if w.Size() != int64(len(want)) {
				t.Errorf("Size = %d, want %d", w.Size(), len(want))
			}

			size, err := s.Info(ctx, got)
			if err != nil || size != int64(len(want)) {
				t.Errorf("Info = (%d, %v), want (%d, nil)", size, err, len(want))
			}
			f, size, err := s.Open(ctx, got)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil || string(b) != want || size != int64(len(want)) {
				t.Errorf("Open read %d bytes (size %d), err %v; want %d bytes", len(b), size, err, len(want))
			}
			if diff := cmp.Diff([]string{wantDigest.Encoded()}, listDir(t, filepath.Join(root, "sha256"))); diff != "" {
				t.Errorf("sha256/ (-want +got):\n%s", diff)
			}
			if got := listDir(t, filepath.Join(root, "ingest")); len(got) != 0 {
				t.Errorf("ingest after Commit: %v", got)
			}
			// A committed blob is immutable on disk.
			fi, err := os.Stat(filepath.Join(root, "sha256", wantDigest.Encoded()))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o222 != 0 {
				t.Errorf("committed blob mode %v is writable", fi.Mode())
			}
		})
	}
}

func TestCommitTwiceSameContent(t *testing.T) {
	s, root := openStore(t)
	d1 := commit(t, s, "same bytes")
	d2 := commit(t, s, "same bytes")
	if d1 != d2 {
		t.Fatalf("identical content gave %s and %s", d1, d2)
	}
	if diff := cmp.Diff([]string{d1.Encoded()}, listDir(t, filepath.Join(root, "sha256"))); diff != "" {
		t.Errorf("sha256/ (-want +got):\n%s", diff)
	}
	if got := listDir(t, filepath.Join(root, "ingest")); len(got) != 0 {
		t.Errorf("ingest after the duplicate Commit: %v", got)
	}
	// Put takes the same path.
	d3, err := s.Put(t.Context(), []byte("same bytes"))
	if err != nil || d3 != d1 {
		t.Errorf("Put = (%s, %v), want %s", d3, err, d1)
	}
	b, err := s.ReadAll(t.Context(), d1, 100)
	if err != nil || string(b) != "same bytes" {
		t.Errorf("ReadAll = (%q, %v)", b, err)
	}
}

func TestCommitWrongDigest(t *testing.T) {
	s, root := openStore(t)
	ctx := t.Context()
	w, err := s.Writer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("actual")); err != nil {
		t.Fatal(err)
	}
	expected := digest.FromString("expected")
	got, err := w.Commit(ctx, expected)
	if !errdefs.IsDataLoss(err) {
		t.Fatalf("Commit with a wrong digest = (%s, %v), want DataLoss", got, err)
	}
	if got != "" {
		t.Errorf("Commit returned digest %s with its error", got)
	}
	for _, msg := range []string{expected.String(), digest.FromString("actual").String()} {
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("error %q does not name %s", err, msg)
		}
	}
	for _, d := range []digest.Digest{expected, digest.FromString("actual")} {
		if _, err := s.Info(ctx, d); !errdefs.IsNotFound(err) {
			t.Errorf("Info(%s) after failed Commit = %v, want NotFound", d, err)
		}
	}
	if got := listDir(t, filepath.Join(root, "sha256")); len(got) != 0 {
		t.Errorf("sha256/ after failed Commit: %v", got)
	}
	if got := listDir(t, filepath.Join(root, "ingest")); len(got) != 0 {
		t.Errorf("ingest after failed Commit: %v", got)
	}
	// The writer is spent.
	if _, err := w.Commit(ctx, ""); err == nil {
		t.Error("second Commit succeeded")
	}
	w.Close() // a no-op after Commit
}

func TestWriterClose(t *testing.T) {
	s, root := openStore(t)
	ctx := t.Context()
	w, err := s.Writer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abandoned")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := listDir(t, filepath.Join(root, "ingest")); len(got) != 0 {
		t.Errorf("ingest after Close: %v", got)
	}
	if got := listDir(t, filepath.Join(root, "sha256")); len(got) != 0 {
		t.Errorf("sha256/ after Close: %v", got)
	}
	w.Close() // idempotent
	if _, err := w.Commit(ctx, ""); err == nil {
		t.Error("Commit after Close succeeded")
	}

	// Close after a successful Commit keeps the blob.
	w, err = s.Writer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	d, err := w.Commit(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := s.Info(ctx, d); err != nil {
		t.Errorf("Info after Commit+Close: %v", err)
	}
}

func TestOpenCleansIngest(t *testing.T) {
	s, root := openStore(t)
	kept := commit(t, s, "kept")
	w, err := s.Writer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("interrupted")); err != nil {
		t.Fatal(err)
	}
	// Simulate a kill: the writer is never committed or closed.
	if err := os.WriteFile(filepath.Join(root, "ingest", "blob-leftover"), []byte("x"), 0o444); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, filepath.Join(root, "ingest")); len(got) != 0 {
		t.Errorf("ingest after Open: %v", got)
	}
	if diff := cmp.Diff([]digest.Digest{kept}, walk(t, s2)); diff != "" {
		t.Errorf("blobs after Open (-want +got):\n%s", diff)
	}
}

func TestWalk(t *testing.T) {
	s, root := openStore(t)
	if got := walk(t, s); len(got) != 0 {
		t.Errorf("Walk of an empty store = %v", got)
	}
	var want []digest.Digest
	for _, c := range []string{"a", "b", "c"} {
		want = append(want, commit(t, s, c))
	}
	slices.Sort(want)
	// Files that are not blobs are not reported.
	for _, name := range []string{"not-a-digest", strings.Repeat("z", 64), strings.Repeat("a", 63)} {
		if err := os.WriteFile(filepath.Join(root, "sha256", name), nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(want, walk(t, s)); diff != "" {
		t.Errorf("Walk (-want +got):\n%s", diff)
	}

	// An error from fn stops the walk and is returned.
	stop := errors.New("stop")
	calls := 0
	err := s.Walk(t.Context(), func(digest.Digest) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Walk with a failing fn = %v after %d calls, want stop after 1", err, calls)
	}

	// A cancelled context stops it too.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Walk(ctx, func(digest.Digest) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Walk with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestDelete(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	a := commit(t, s, "a")
	b := commit(t, s, "b")
	if err := s.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx, a); !errdefs.IsNotFound(err) {
		t.Errorf("Info after Delete = %v, want NotFound", err)
	}
	if _, _, err := s.Open(ctx, a); !errdefs.IsNotFound(err) {
		t.Errorf("Open after Delete = %v, want NotFound", err)
	}
	if err := s.Delete(ctx, a); err != nil {
		t.Errorf("Delete of a missing blob = %v, want nil", err)
	}
	if diff := cmp.Diff([]digest.Digest{b}, walk(t, s)); diff != "" {
		t.Errorf("blobs after Delete (-want +got):\n%s", diff)
	}
	// The content can be committed again.
	if got := commit(t, s, "a"); got != a {
		t.Errorf("recommit = %s, want %s", got, a)
	}
}

func TestReadAllLimit(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	d := commit(t, s, "0123456789")
	tests := []struct {
		name    string
		limit   int64
		wantErr bool
	}{
		{name: "above size", limit: 11},
		{name: "exact size", limit: 10},
		{name: "below size", limit: 9, wantErr: true},
		{name: "zero", limit: 0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.ReadAll(ctx, d, tt.limit)
			if tt.wantErr {
				if !errdefs.IsResourceExhausted(err) {
					t.Fatalf("ReadAll(limit %d) = (%q, %v), want ResourceExhausted", tt.limit, b, err)
				}
				return
			}
			if err != nil || string(b) != "0123456789" {
				t.Fatalf("ReadAll(limit %d) = (%q, %v)", tt.limit, b, err)
			}
		})
	}
}

func TestBadDigests(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	tests := []struct {
		name  string
		dgst  digest.Digest
		class func(error) bool
	}{
		{name: "empty", dgst: "", class: errdefs.IsInvalidArgument},
		{name: "no algorithm", dgst: "abc", class: errdefs.IsInvalidArgument},
		{name: "short hex", dgst: "sha256:abc", class: errdefs.IsInvalidArgument},
		{name: "path traversal", dgst: "sha256:../../../etc/passwd", class: errdefs.IsInvalidArgument},
		{name: "unknown algorithm", dgst: "md5:d41d8cd98f00b204e9800998ecf8427e", class: errdefs.IsInvalidArgument},
		{name: "missing blob", dgst: digest.FromString("missing"), class: errdefs.IsNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Info(ctx, tt.dgst); !tt.class(err) {
				t.Errorf("Info = %v", err)
			}
			if _, _, err := s.Open(ctx, tt.dgst); !tt.class(err) {
				t.Errorf("Open = %v", err)
			}
			if _, err := s.ReadAll(ctx, tt.dgst, 10); !tt.class(err) {
				t.Errorf("ReadAll = %v", err)
			}
			if tt.name != "missing blob" {
				if err := s.Delete(ctx, tt.dgst); !tt.class(err) {
					t.Errorf("Delete = %v", err)
				}
			}
		})
	}
}

// TestConcurrentCommits commits the same and different content from many
// goroutines under the race detector.
func TestConcurrentCommits(t *testing.T) {
	s, root := openStore(t)
	ctx := t.Context()
	contents := []string{"one", "two", "one", "two", "one", "three", "three", "one"}
	got := make([]digest.Digest, len(contents))
	errs := make([]error, len(contents))
	done := make(chan int)
	for i, c := range contents {
		go func() {
			got[i], errs[i] = s.Put(ctx, bytes.Repeat([]byte(c), 1000))
			done <- i
		}()
	}
	for range contents {
		<-done
	}
	for i, c := range contents {
		want := digest.FromBytes(bytes.Repeat([]byte(c), 1000))
		if errs[i] != nil || got[i] != want {
			t.Errorf("Put(%q) = (%s, %v), want %s", c, got[i], errs[i], want)
		}
	}
	if n := len(listDir(t, filepath.Join(root, "sha256"))); n != 3 {
		t.Errorf("sha256/ holds %d blobs, want 3", n)
	}
	if got := listDir(t, filepath.Join(root, "ingest")); len(got) != 0 {
		t.Errorf("ingest after the commits: %v", got)
	}
}

// TestVerifiedWriter: content the caller has verified is stored under the
// digest it names, with the bytes written (big enough to take the O_DIRECT
// path and leave an unaligned tail); without a digest nothing is stored.
func TestVerifiedWriter(t *testing.T) {
	s, root := openStore(t)
	ctx := t.Context()
	content := strings.Repeat("verified content ", 200_000) // 3.4 MB
	want := digest.FromString(content)

	w, err := s.VerifiedWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, content); err != nil {
		t.Fatal(err)
	}
	if d := w.Digest(); d != "" {
		t.Errorf("Digest() of a verified writer = %s, want empty (it does not hash)", d)
	}
	if got, err := w.Commit(ctx, want); err != nil || got != want {
		t.Fatalf("Commit = %s, %v; want %s", got, err, want)
	}
	b, err := s.ReadAll(ctx, want, int64(len(content)))
	if err != nil || string(b) != content {
		t.Fatalf("ReadAll: %d bytes, %v; want the %d written", len(b), err, len(content))
	}

	w, err = s.VerifiedWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "no digest"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx, ""); err == nil {
		t.Error("Commit of a verified writer without a digest succeeded")
	}
	if got := walk(t, s); !slices.Equal(got, []digest.Digest{want}) {
		t.Errorf("store holds %v, want only %s", got, want)
	}
	if got := listDir(t, filepath.Join(root, "ingest")); len(got) != 0 {
		t.Errorf("ingest after a refused Commit: %v", got)
	}
}
