package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
)

// splitter is the state of one Split call.
type splitter struct {
	in *input
	x  *extractor
	lw *layerWriter
	tw *tar.Writer

	config     []byte
	haveConfig bool
	haveRootfs bool
}

func split(ctx context.Context, r io.Reader, dir string, layer io.Writer) ([]byte, error) {
	in, err := newInput(ctx, r, true)
	if err != nil {
		return nil, err
	}
	x, err := newExtractor(dir, in, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = x.close() }()
	lw := &layerWriter{w: layer}
	s := &splitter{in: in, x: x, lw: lw, tw: tar.NewWriter(lw)}
	return s.run()
}

func (s *splitter) run() ([]byte, error) {
	for {
		hdr, err := s.in.next()
		if err != nil {
			return nil, err
		}
		if hdr == nil {
			break
		}
		if err := s.entry(hdr); err != nil {
			return nil, err
		}
	}
	if err := s.in.finish(); err != nil {
		return nil, err
	}
	if !s.haveConfig {
		return nil, invalidf("config not found")
	}
	if !s.haveRootfs {
		return nil, invalidf("no rootfs found")
	}
	if err := s.x.finish(); err != nil {
		return nil, err
	}
	if err := s.tw.Close(); err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	return s.config, nil
}

// entry dispatches one header of the build context.
func (s *splitter) entry(hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // archive-wide defaults, already merged by archive/tar
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "config.json" {
		return s.readConfig(hdr)
	}
	first, rest := splitFirst(name)
	if first != "rootfs" {
		return s.in.copyBody(io.Discard) // skip, but stay cancellable
	}
	s.haveRootfs = true
	if rest == "." {
		// The rootfs directory itself: its metadata is left to the caller.
		if hdr.Typeflag != tar.TypeDir {
			return invalidf("entry %q: rootfs must be a directory", hdr.Name)
		}
		return nil
	}
	return s.rootfsEntry(hdr, rest)
}

func (s *splitter) readConfig(hdr *tar.Header) error {
	switch {
	case s.haveConfig:
		return invalidf("entry %q: duplicate config.json", hdr.Name)
	case hdr.Typeflag != tar.TypeReg:
		return invalidf("entry %q: config.json is not a regular file", hdr.Name)
	case hdr.Size > MaxConfigSize:
		return invalidf("config.json is %d bytes, more than the %d allowed", hdr.Size, MaxConfigSize)
	}
	var buf bytes.Buffer
	buf.Grow(int(hdr.Size))
	if err := s.in.copyBody(&buf); err != nil {
		return err
	}
	s.config, s.haveConfig = buf.Bytes(), true
	if s.config == nil {
		s.config = []byte{}
	}
	return nil
}

// rootfsEntry extracts an entry found under rootfs/ (rel is its path with
// that prefix gone) and writes it to the layer.
func (s *splitter) rootfsEntry(hdr *tar.Header, rel string) error {
	if err := checkType(hdr); err != nil {
		return err
	}
	if isWhiteout(rel) {
		return invalidf("entry %q: names starting with %q are reserved for layer whiteouts", hdr.Name, whiteoutPrefix)
	}
	e := entry{hdr: hdr, path: rel}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		e.link = hdr.Linkname
	case tar.TypeLink:
		link, err := stripLinkTarget(hdr)
		if err != nil {
			return err
		}
		e.link = link
	}
	if err := s.writeHeader(e); err != nil {
		return err
	}
	return s.x.extract(e, layerBody{s.tw})
}

// stripLinkTarget maps a hardlink target of the build context into the
// rootfs, the same way entry names are.
func stripLinkTarget(hdr *tar.Header) (string, error) {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return "", err
	}
	first, rest := splitFirst(target)
	if first != "rootfs" {
		return "", invalidf("entry %q: hardlink target %q is outside rootfs/", hdr.Name, hdr.Linkname)
	}
	return rest, nil
}

// writeHeader emits e's header to the layer. A header that archive/tar
// read but cannot write back is the archive's fault, unless the failure
// came from the layer's own writer.
func (s *splitter) writeHeader(e entry) error {
	if err := s.tw.WriteHeader(layerHeader(e)); err != nil {
		if s.lw.err != nil {
			return fmt.Errorf("writing layer: %w", err)
		}
		return invalidf("entry %q cannot be written to the layer: %v", e.hdr.Name, err)
	}
	return nil
}

// layerHeader builds the layer's copy of e. Only fields that describe the
// file are carried over, and the format is pinned, so the output depends on
// the input alone.
func layerHeader(e entry) *tar.Header {
	in := e.hdr
	out := &tar.Header{
		Typeflag:   in.Typeflag,
		Name:       e.path,
		Linkname:   e.link,
		Size:       in.Size,
		Mode:       in.Mode & 0o7777,
		Uid:        in.Uid,
		Gid:        in.Gid,
		Uname:      in.Uname,
		Gname:      in.Gname,
		ModTime:    in.ModTime,
		PAXRecords: extraPAXRecords(in.PAXRecords),
		// PAX only where USTAR cannot say it (long names, sub-second
		// mtimes, big ids, xattrs).
		Format: tar.FormatPAX,
	}
	switch in.Typeflag {
	case tar.TypeReg:
	case tar.TypeChar, tar.TypeBlock:
		out.Devmajor, out.Devminor = in.Devmajor, in.Devminor
		out.Size = 0
	case tar.TypeDir:
		out.Name += "/"
		out.Size = 0
	default:
		out.Size = 0
	}
	return out
}

// paxHeaderKeys are PAX records that merely restate header fields;
// archive/tar regenerates them from the fields themselves.
var paxHeaderKeys = map[string]bool{
	"path": true, "linkpath": true, "size": true, "uid": true, "gid": true,
	"uname": true, "gname": true, "mtime": true, "atime": true, "ctime": true,
}

// extraPAXRecords keeps the records that carry information of their own,
// such as SCHILY.xattr.* extended attributes.
func extraPAXRecords(recs map[string]string) map[string]string {
	var out map[string]string
	for k, v := range recs {
		if paxHeaderKeys[k] || strings.HasPrefix(k, "GNU.sparse.") {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

// layerWriter remembers the first failure of the caller's writer, so it
// can be told apart from header encoding errors.
type layerWriter struct {
	w   io.Writer
	err error
}

func (l *layerWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil && l.err == nil {
		l.err = err
	}
	return n, err
}

// layerBody is the tee for file bodies: a failure there is never the
// client's.
type layerBody struct{ tw *tar.Writer }

func (b layerBody) Write(p []byte) (int, error) {
	n, err := b.tw.Write(p)
	if err != nil {
		return n, fmt.Errorf("writing layer: %w", err)
	}
	return n, nil
}
