// Package blobstore is a content-addressed store of plugin blobs (configs,
// layers, manifests) on the local filesystem.
//
// Layout under the store's root (<data-root>/blobs):
//
//	sha256/<hex>     a committed blob, immutable, named by its digest
//	ingest/<random>  a blob being written; deleted at start-up
//
// A blob is written through a Writer that hashes while it writes, so the
// digest of a stream (a gzip layer being produced by create) is known the
// moment the stream ends, with no second pass. Commit fsyncs and renames;
// committing content that is already present simply drops the copy, so two
// plugins with byte-identical content share blobs (dockerd refuses the second
// one: public case B03).
package blobstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/manager/directio"
)

// Store is the local blob store.
type Store struct {
	root string
}

// Open opens (creating if needed) the store at root and deletes ingest files
// left by an interrupted write.
func Open(root string) (*Store, error) {
	s := &Store{root: root}
	if err := os.RemoveAll(s.ingestDir()); err != nil {
		logrus.WithError(err).Warn("blob store: cannot clean ingest directory")
	}
	for _, d := range []string{s.ingestDir(), filepath.Join(root, "sha256")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	return s, nil
}

func (s *Store) ingestDir() string { return filepath.Join(s.root, "ingest") }

func (s *Store) path(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid digest %q: %v", dgst, err))
	}
	if dgst.Algorithm() != digest.SHA256 {
		return "", errdefs.ErrNotImplemented.WithMessage(fmt.Sprintf("unsupported digest algorithm %s", dgst.Algorithm()))
	}
	return filepath.Join(s.root, "sha256", dgst.Encoded()), nil
}

// Info returns the size of blob dgst, or a NotFound error.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (int64, error) {
	p, err := s.path(dgst)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("blob %s not found", dgst))
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Open returns a reader of blob dgst and its size.
func (s *Store) Open(ctx context.Context, dgst digest.Digest) (*os.File, int64, error) {
	p, err := s.path(dgst)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("blob %s not found", dgst))
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// ReadAll returns the content of a small blob (configs, manifests), refusing
// blobs above limit bytes.
func (s *Store) ReadAll(ctx context.Context, dgst digest.Digest, limit int64) ([]byte, error) {
	f, size, err := s.Open(ctx, dgst)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > limit {
		return nil, errdefs.ErrResourceExhausted.WithMessage(fmt.Sprintf("blob %s is %d bytes, more than %d", dgst, size, limit))
	}
	return io.ReadAll(f)
}

// Put stores b and returns its digest.
func (s *Store) Put(ctx context.Context, b []byte) (digest.Digest, error) {
	w, err := s.Writer(ctx)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return "", err
	}
	return w.Commit(ctx, "")
}

// Delete removes blob dgst; a missing blob is not an error.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.path(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Walk calls fn with the digest of every committed blob.
func (s *Store) Walk(ctx context.Context, fn func(digest.Digest) error) error {
	entries, err := os.ReadDir(filepath.Join(s.root, "sha256"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// Writer starts a new blob.
func (s *Store) Writer(ctx context.Context) (*Writer, error) {
	return s.writer(sha256.New())
}

// VerifiedWriter starts a new blob whose content the caller verifies
// itself while streaming it (a registry download read through a reader that
// checks size and digest before it reports the end): the store does not
// hash it a second time. Its Commit needs the expected digest, and must be
// called only once the caller's verification has passed.
func (s *Store) VerifiedWriter(ctx context.Context) (*Writer, error) {
	return s.writer(nil)
}

func (s *Store) writer(h hash.Hash) (*Writer, error) {
	f, err := os.CreateTemp(s.ingestDir(), "blob-")
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return &Writer{s: s, f: f, dw: directio.NewWriter(f), h: h}, nil
}

// Writer writes one blob, hashing as it goes. Commit or Close must be called.
type Writer struct {
	s    *Store
	f    *os.File
	dw   *directio.Writer // buffers: callers need not
	h    hash.Hash        // nil for a VerifiedWriter
	n    int64
	done bool
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.dw.Write(p)
	if w.h != nil {
		w.h.Write(p[:n])
	}
	w.n += int64(n)
	return n, err
}

// Size returns the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Digest returns the digest of what was written so far; for a
// VerifiedWriter, which does not hash, it is empty.
func (w *Writer) Digest() digest.Digest {
	if w.h == nil {
		return ""
	}
	return digest.NewDigest(digest.SHA256, w.h)
}

// Commit makes the blob visible under its digest. If expected is not empty
// and differs from the digest of the bytes written, nothing is committed and
// a DataLoss-class error says so. Commit always closes the writer.
func (w *Writer) Commit(ctx context.Context, expected digest.Digest) (digest.Digest, error) {
	if w.done {
		return "", errors.New("blob store: writer already closed")
	}
	w.done = true
	tmp := w.f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	dgst := w.Digest()
	if w.h == nil {
		if expected == "" {
			w.dw.Release()
			w.f.Close()
			return "", errors.New("blob store: a verified blob needs its digest")
		}
		dgst = expected
	}
	if expected != "" && expected != dgst {
		w.dw.Release()
		w.f.Close()
		return "", errdefs.ErrDataLoss.WithMessage(fmt.Sprintf("digest mismatch: expected %s, got %s", expected, dgst))
	}
	if err := w.dw.Finish(); err != nil {
		w.f.Close()
		return "", fmt.Errorf("blob store: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return "", fmt.Errorf("blob store: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return "", fmt.Errorf("blob store: %w", err)
	}
	dst, err := w.s.path(dgst)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dst); err == nil {
		return dgst, nil // already present: identical content is shared
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return "", fmt.Errorf("blob store: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("blob store: %w", err)
	}
	// The rename must reach the disk before a record that names the blob.
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return "", err
	}
	return dgst, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blob store: fsync %s: %w", dir, err)
	}
	return nil
}

// Close abandons an uncommitted blob; after Commit it does nothing.
func (w *Writer) Close() {
	if w.done {
		return
	}
	w.done = true
	w.dw.Release()
	w.f.Close()
	os.Remove(w.f.Name())
}
