package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
)

func apply(ctx context.Context, r io.Reader, dir string) error {
	in, err := newInput(ctx, r, false)
	if err != nil {
		return err
	}
	x, err := newExtractor(dir, in, true)
	if err != nil {
		return err
	}
	defer func() { _ = x.close() }()
	for {
		hdr, err := in.next()
		if err != nil {
			return err
		}
		if hdr == nil {
			break
		}
		if err := x.applyEntry(hdr); err != nil {
			return err
		}
	}
	return x.finish()
}

// applyEntry extracts one layer entry or carries out its whiteout.
func (x *extractor) applyEntry(hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		// The layer's root: its metadata is left to the caller.
		if hdr.Typeflag != tar.TypeDir {
			return invalidf("entry %q: the layer root must be a directory", hdr.Name)
		}
		return nil
	}
	if isWhiteout(name) {
		return x.whiteout(hdr, name)
	}
	if err := checkType(hdr); err != nil {
		return err
	}
	e := entry{hdr: hdr, path: name}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		e.link = hdr.Linkname
	case tar.TypeLink:
		if e.link, err = cleanName(hdr.Linkname); err != nil {
			return err
		}
	}
	return x.extract(e, nil)
}

// whiteout deletes what a .wh. entry hides from earlier layers.
func (x *extractor) whiteout(hdr *tar.Header, name string) error {
	dir, base := path.Split(name)
	dir = path.Clean(dir) // "" becomes "."
	switch {
	case base == whiteoutOpaque:
		return x.opaque(hdr, dir)
	case strings.HasPrefix(base, whiteoutMeta):
		return nil // AUFS bookkeeping (.wh..wh.plnk and friends)
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		return invalidf("entry %q: invalid whiteout", hdr.Name)
	}
	if err := x.root.RemoveAll(path.Join(dir, target)); err != nil {
		return fsError(hdr.Name, err)
	}
	return nil
}

// opaque empties dir of everything this layer did not write itself,
// descending into the directories it did write to, since those may still
// hold entries from earlier layers. A missing dir, or one that is not a
// directory, hides nothing.
func (x *extractor) opaque(hdr *tar.Header, dir string) error {
	fi, err := x.root.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil
	}
	if err != nil {
		return fsError(hdr.Name, err)
	}
	f, err := x.root.Open(dir)
	if err != nil {
		return fsError(hdr.Name, err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fsError(hdr.Name, err)
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if _, kept := x.written[p]; kept {
			if err := x.opaque(hdr, p); err != nil {
				return err
			}
			continue
		}
		if err := x.root.RemoveAll(p); err != nil {
			return fsError(hdr.Name, err)
		}
	}
	return nil
}
