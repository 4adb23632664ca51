package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pluginsd/pluginsd/manager/directio"
)

// geteuid is a variable so tests can pretend to be unprivileged.
var geteuid = os.Geteuid

// entry is one tar entry resolved against the tree being extracted.
type entry struct {
	hdr  *tar.Header // as read; hdr.Name is what error messages quote
	path string      // cleaned, relative to the tree, never "."
	link string      // hardlink: cleaned target in the tree; symlink: verbatim
}

// extractor writes entries into a directory through an os.Root, which is
// what keeps every operation inside it.
type extractor struct {
	root *os.Root
	in   *input

	// dirs records directory entries in order of first appearance, and
	// dirMeta the metadata of the latest entry for each, for the final
	// pass. Only what that pass needs is kept, so memory stays well below
	// the size of the archive.
	dirs    []string
	dirMeta map[string]dirMeta

	// written, when non-nil (Apply), holds every path this stream wrote
	// and their ancestors, so an opaque whiteout spares them.
	written map[string]struct{}
}

func newExtractor(dir string, in *input, trackWrites bool) (*extractor, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening rootfs directory: %w", err)
	}
	x := &extractor{root: root, in: in, dirMeta: map[string]dirMeta{}}
	if trackWrites {
		x.written = map[string]struct{}{}
	}
	return x, nil
}

func (x *extractor) close() error { return x.root.Close() }

// checkType refuses entry types the extractor does not handle, before
// anything is written for the entry.
func checkType(hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return invalidf("entry %q: unsupported type %q", hdr.Name, hdr.Typeflag)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return invalidf("entry %q: sparse files are not supported", hdr.Name)
		}
	}
	if hdr.Uid < 0 || hdr.Gid < 0 {
		return invalidf("entry %q: negative owner %d:%d", hdr.Name, hdr.Uid, hdr.Gid)
	}
	if len(hdr.Linkname) > MaxNameLen {
		return invalidf("entry %q: link target longer than %d bytes", hdr.Name, MaxNameLen)
	}
	return nil
}

// extract creates e in the tree. For a regular file the body is read from
// the input and also copied to tee when tee is not nil.
func (x *extractor) extract(e entry, tee io.Writer) error {
	var err error
	switch e.hdr.Typeflag {
	case tar.TypeDir:
		err = x.mkdir(e)
	case tar.TypeReg:
		err = x.createFile(e, tee)
	case tar.TypeSymlink:
		err = x.symlink(e)
	case tar.TypeLink:
		err = x.hardlink(e)
	default:
		// Devices and FIFOs are not materialised: a plugin has no business
		// shipping them and mknod is a privilege we do not want to lend.
		// Their path must still stay inside the tree.
		return x.checkPath(e)
	}
	if err == nil {
		x.markWritten(e.path)
	}
	return err
}

// checkPath fails if e.path cannot be reached inside the tree, for
// entries that are not created.
func (x *extractor) checkPath(e entry) error {
	if _, err := x.root.Lstat(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fsError(e.hdr.Name, err)
	}
	return nil
}

// clearPath makes room for e: it creates missing parents and removes
// whatever occupies e.path, except a directory when e is one too. It
// reports whether e.path is left in place as an existing directory.
func (x *extractor) clearPath(e entry) (existingDir bool, err error) {
	fi, err := x.root.Lstat(e.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if parent := path.Dir(e.path); parent != "." {
			if err := x.root.MkdirAll(parent, 0o755); err != nil {
				return false, fsError(e.hdr.Name, err)
			}
		}
		return false, nil
	case err != nil:
		return false, fsError(e.hdr.Name, err)
	case fi.IsDir() && e.hdr.Typeflag == tar.TypeDir:
		return true, nil
	case fi.IsDir():
		err = x.root.RemoveAll(e.path)
	default:
		err = x.root.Remove(e.path)
	}
	if err != nil {
		return false, fsError(e.hdr.Name, err)
	}
	return false, nil
}

// mkdir creates (or keeps) a directory. Its mode and mtime wait for
// finish; its owner is set now.
func (x *extractor) mkdir(e entry) error {
	existing, err := x.clearPath(e)
	if err != nil {
		return err
	}
	if !existing {
		if err := x.root.Mkdir(e.path, 0o700); err != nil {
			return fsError(e.hdr.Name, err)
		}
	}
	if err := lchownError(x.root.Lchown(e.path, e.hdr.Uid, e.hdr.Gid)); err != nil {
		return fsError(e.hdr.Name, err)
	}
	if _, seen := x.dirMeta[e.path]; !seen {
		x.dirs = append(x.dirs, e.path)
	}
	x.dirMeta[e.path] = dirMeta{mode: fileMode(e.hdr), atime: e.hdr.AccessTime, mtime: e.hdr.ModTime}
	return nil
}

// createFile writes a regular file. Owner and mode go through the open
// descriptor (owner first: chown clears setuid/setgid bits).
func (x *extractor) createFile(e entry, tee io.Writer) error {
	if _, err := x.clearPath(e); err != nil {
		return err
	}
	f, err := x.root.OpenFile(e.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fsError(e.hdr.Name, err)
	}
	fw := fileWriter{f: f, name: e.hdr.Name}
	if e.hdr.Size >= directMinSize {
		fw.dw = directio.NewWriter(f)
	}
	var w io.Writer = fw
	if tee != nil {
		w = io.MultiWriter(w, tee)
	}
	err = x.in.copyBody(w)
	if fw.dw != nil {
		if err == nil {
			if ferr := fw.dw.Finish(); ferr != nil {
				err = fsError(e.hdr.Name, ferr)
			}
		}
		fw.dw.Release() // before Close: a write may still be in flight
	}
	if err == nil {
		err = x.setFileMeta(f, e.hdr)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fsError(e.hdr.Name, cerr)
	}
	if err != nil {
		return err
	}
	if err := x.chtimes(e.path, e.hdr.AccessTime, e.hdr.ModTime); err != nil {
		return fsError(e.hdr.Name, err)
	}
	return nil
}

func (x *extractor) setFileMeta(f *os.File, hdr *tar.Header) error {
	if err := lchownError(f.Chown(hdr.Uid, hdr.Gid)); err != nil {
		return fsError(hdr.Name, err)
	}
	if err := f.Chmod(fileMode(hdr)); err != nil {
		return fsError(hdr.Name, err)
	}
	return nil
}

// symlink stores the target verbatim; os.Root will refuse to follow it
// later if it leads outside the tree.
func (x *extractor) symlink(e entry) error {
	if _, err := x.clearPath(e); err != nil {
		return err
	}
	if err := x.root.Symlink(e.link, e.path); err != nil {
		return fsError(e.hdr.Name, err)
	}
	if err := lchownError(x.root.Lchown(e.path, e.hdr.Uid, e.hdr.Gid)); err != nil {
		return fsError(e.hdr.Name, err)
	}
	return nil
}

// hardlink links e.path to an existing regular file of the tree. The
// entry's own metadata is not applied: it would rewrite the shared inode.
func (x *extractor) hardlink(e entry) error {
	if e.link == e.path {
		return invalidf("entry %q: hardlink to itself", e.hdr.Name)
	}
	fi, err := x.root.Lstat(e.link)
	if err != nil {
		if isServerError(err) {
			return fsError(e.hdr.Name, err)
		}
		return invalidf("entry %q: hardlink target %q: %v", e.hdr.Name, e.hdr.Linkname, err)
	}
	if !fi.Mode().IsRegular() {
		return invalidf("entry %q: hardlink target %q is not a regular file", e.hdr.Name, e.hdr.Linkname)
	}
	if _, err := x.clearPath(e); err != nil {
		return err
	}
	if err := x.root.Link(e.link, e.path); err != nil {
		return fsError(e.hdr.Name, err)
	}
	return nil
}

// dirMeta is what finish applies to a directory.
type dirMeta struct {
	mode         fs.FileMode
	atime, mtime time.Time
}

// finish applies directory modes and mtimes once no more children will be
// created, to the directories that are still directories.
func (x *extractor) finish() error {
	for _, p := range x.dirs {
		if err := x.in.ctx.Err(); err != nil {
			return err
		}
		fi, err := x.root.Lstat(p)
		if err != nil || !fi.IsDir() {
			continue // replaced or removed by a later entry
		}
		m := x.dirMeta[p]
		if err := x.root.Chmod(p, m.mode); err != nil {
			return fsError(p, err)
		}
		if err := x.chtimes(p, m.atime, m.mtime); err != nil {
			return fsError(p, err)
		}
	}
	return nil
}

// chtimes sets mtime, and atime when the archive has one (else mtime).
func (x *extractor) chtimes(p string, atime, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	if atime.IsZero() {
		atime = mtime
	}
	return x.root.Chtimes(p, atime, mtime)
}

// markWritten records p and its ancestors as written by this stream.
func (x *extractor) markWritten(p string) {
	if x.written == nil {
		return
	}
	for ; p != "."; p = path.Dir(p) {
		if _, ok := x.written[p]; ok {
			return
		}
		x.written[p] = struct{}{}
	}
}

// fileMode keeps the permission and setuid/setgid/sticky bits of hdr.
func fileMode(hdr *tar.Header) fs.FileMode {
	const keep = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	return hdr.FileInfo().Mode() & keep
}

// directMinSize is the size from which a file is written around the page
// cache (see package directio): big files, such as a plugin's binaries or
// data, are where the time goes; small ones are not worth a buffer.
const directMinSize = 1 << 20

// fileWriter classifies write failures of an extracted file.
type fileWriter struct {
	f    *os.File
	dw   *directio.Writer // for big files
	name string
}

func (w fileWriter) Write(p []byte) (int, error) {
	var n int
	var err error
	if w.dw != nil {
		n, err = w.dw.Write(p)
	} else {
		n, err = w.f.Write(p)
	}
	if err != nil {
		return n, fsError(w.name, err)
	}
	return n, nil
}
