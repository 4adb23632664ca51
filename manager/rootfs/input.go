package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
)

// gzipTrailerLimit bounds how much decompressed data past the end of the
// tar is read to reach (and so verify) the gzip checksum.
const gzipTrailerLimit = 1 << 20

// sourceReader remembers the first failure of the underlying body, so a
// broken connection or a caller-imposed size limit is not mistaken for a
// malformed archive.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// input is the tar stream being consumed, with what is needed to explain
// its failures.
type input struct {
	ctx  context.Context
	src  *sourceReader
	gz   *gzip.Reader // nil unless the body is gzip-compressed
	tr   *tar.Reader
	hint string // what the body looks like when it is not a tar
	buf  []byte
	n    int // entries read so far
}

// newInput wraps r. With sniff set (Split), a gzip body is decompressed
// transparently and the first bytes are kept to explain a parse failure.
func newInput(ctx context.Context, r io.Reader, sniff bool) (*input, error) {
	in := &input{ctx: ctx, src: &sourceReader{r: r}, buf: make([]byte, 32<<10)}
	var tarStream io.Reader = in.src
	if sniff {
		br := bufio.NewReader(in.src)
		magic, _ := br.Peek(6) // a short body is diagnosed by the tar reader
		tarStream = br
		if bytes.HasPrefix(magic, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(br)
			if err != nil {
				return nil, in.fail(err)
			}
			in.gz, tarStream = zr, zr
		} else {
			in.hint = sniffHint(magic)
		}
	}
	in.tr = tar.NewReader(tarStream)
	return in, nil
}

// sniffHint names formats people send by mistake, for the error message.
func sniffHint(magic []byte) string {
	switch {
	case bytes.HasPrefix(magic, []byte("BZh")):
		return "body looks like bzip2; send an uncompressed or gzip-compressed tar"
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "body looks like xz; send an uncompressed or gzip-compressed tar"
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "body looks like zstd; send an uncompressed or gzip-compressed tar"
	case bytes.HasPrefix(magic, []byte("PK\x03\x04")):
		return "body looks like a zip archive; send a tar"
	case bytes.HasPrefix(bytes.TrimLeft(magic, " \t\r\n"), []byte("{")):
		return "body looks like JSON; send a tar holding config.json and rootfs/"
	}
	return ""
}

// fail classifies an error met while reading the stream: a failure of the
// body itself is passed through, anything else means the archive is bad.
func (in *input) fail(err error) error {
	if in.src.err != nil && !errors.Is(in.src.err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("reading body: %w", in.src.err)
	}
	msg := "invalid tar: " + err.Error()
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(in.src.err, io.ErrUnexpectedEOF) {
		msg = "invalid tar: unexpected end of stream (truncated body?)"
	}
	if in.hint != "" && in.n == 0 {
		msg += " (" + in.hint + ")"
	}
	return invalidf("%s", msg)
}

// next returns the next header, nil at the end of the archive.
func (in *input) next() (*tar.Header, error) {
	if err := in.ctx.Err(); err != nil {
		return nil, err
	}
	hdr, err := in.tr.Next()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, in.fail(err)
	}
	in.n++
	if in.n > MaxEntries {
		return nil, invalidf("invalid tar: more than %d entries", MaxEntries)
	}
	return hdr, nil
}

// copyBody streams the current entry's data to w in chunks, checking for
// cancellation between chunks. Errors from w are returned unchanged: the
// writers given here classify their own failures.
func (in *input) copyBody(w io.Writer) error {
	for {
		if err := in.ctx.Err(); err != nil {
			return err
		}
		n, rerr := in.tr.Read(in.buf)
		if n > 0 {
			if _, err := w.Write(in.buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return in.fail(rerr)
		}
	}
}

// finish reads a gzip body up to its end, bounded, so a corrupted checksum
// is reported instead of silently accepted.
func (in *input) finish() error {
	if in.gz == nil {
		return nil
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(in.gz, gzipTrailerLimit)); err != nil {
		return in.fail(err)
	}
	return nil
}
