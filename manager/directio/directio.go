// Package directio writes and reads large files around the page cache.
//
// A plugin's layer blob and the big files of its rootfs are written once
// and not read back soon (the blob only at push; a rootfs file when the
// plugin starts). Writing them through the page cache first fills it with
// hundreds of megabytes of dirty pages that the kernel must allocate, write
// back and, for the blob, fsync: on the virtual machines these servers run
// on, allocating fresh page cache costs up to 3 s of system time per GB,
// more than everything else a create or an install does. With O_DIRECT the
// data goes from one reused, aligned buffer to the device.
//
// O_DIRECT wants the buffer, the file offset and the length aligned to the
// device's block size, so a Writer fills an aligned buffer, writes it whole,
// and writes the unaligned tail at the end with O_DIRECT turned off. Where
// the filesystem refuses O_DIRECT (tmpfs before Linux 6.6, some FUSE and
// network filesystems), the same Writer writes normally. A Reader does the
// same for a blob read once, to be pushed.
package directio

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

const (
	// align is the largest logical block size of common devices; one that
	// wants more refuses the first write (EINVAL) and gets buffered writes.
	align = 4096
	// bufSize is the size of each write: big enough to keep the device
	// busy, small enough to pool.
	bufSize = 1 << 20
)

var bufPool = sync.Pool{New: func() any { return alignedBuf() }}

// alignedBuf allocates bufSize bytes starting at a multiple of align.
func alignedBuf() []byte {
	b := make([]byte, bufSize+align)
	off := int(uintptr(unsafePointer(b)) & (align - 1))
	if off != 0 {
		off = align - off
	}
	return b[off : off+bufSize : off+bufSize]
}

// Writer buffers writes to f and writes them with O_DIRECT when it can.
// A direct write returns only once the device has the data, so a full
// buffer is handed to a goroutine of the Writer's own and the caller goes
// on filling a second one: the device and the caller work at the same
// time. Finish must be called to write the last bytes; Release (also after
// Finish) stops the goroutine and returns the buffers. A Writer is not safe
// for concurrent use.
type Writer struct {
	f      *os.File
	buf    []byte // being filled
	n      int
	direct bool // changed by the goroutine only while a write is in flight
	err    error

	// Started at the first full buffer: small files never need them.
	work     chan []byte // buffers to write, to the goroutine
	result   chan error  // one per buffer written
	spare    []byte      // the other buffer, free when nothing is in flight
	inflight bool
}

// NewWriter starts writing at f's current offset, which must be 0 or a
// multiple of 4096 for O_DIRECT to be used (it is for a new file).
func NewWriter(f *os.File) *Writer { return newWriter(f, true) }

func newWriter(f *os.File, tryDirect bool) *Writer {
	w := &Writer{f: f, buf: bufPool.Get().([]byte)}
	w.direct = tryDirect && setDirect(f, true) == nil
	return w
}

// Direct reports whether the writes go around the page cache.
func (w *Writer) Direct() bool { return w.direct }

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.buf == nil {
		return 0, errors.New("directio: write after Finish")
	}
	written := 0
	for len(p) > 0 {
		c := copy(w.buf[w.n:], p)
		w.n += c
		p = p[c:]
		written += c
		if w.n == len(w.buf) {
			if err := w.writeAsync(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// writeAsync hands the full buffer to the goroutine, once the previous one
// is written, and takes the other buffer.
func (w *Writer) writeAsync() error {
	if w.work == nil {
		w.work, w.result = make(chan []byte), make(chan error, 1)
		w.spare = bufPool.Get().([]byte)
		go w.loop()
	}
	if err := w.wait(); err != nil {
		return err
	}
	w.work <- w.buf[:w.n]
	w.inflight = true
	w.buf, w.spare = w.spare, w.buf
	w.n = 0
	return nil
}

// wait waits for the write in flight, if any.
func (w *Writer) wait() error {
	if !w.inflight {
		return w.err
	}
	w.inflight = false
	if err := <-w.result; err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

func (w *Writer) loop() {
	for b := range w.work {
		w.result <- w.write(b)
	}
}

// write writes b whole. Some filesystems take the O_DIRECT flag and then
// refuse the write: those get the write without it.
func (w *Writer) write(b []byte) error {
	_, err := w.f.Write(b)
	if err != nil && w.direct && errors.Is(err, syscall.EINVAL) {
		if err = setDirect(w.f, false); err == nil {
			w.direct = false
			_, err = w.f.Write(b)
		}
	}
	return err
}

// Finish writes what is buffered (the aligned part with O_DIRECT, the tail
// without), waits for every write, leaves f in normal mode and releases
// the buffers. f stays open.
func (w *Writer) Finish() error {
	if w.buf == nil {
		return w.err
	}
	defer w.Release()
	if err := w.wait(); err != nil {
		return err
	}
	b := w.buf[:w.n]
	if aligned := len(b) &^ (align - 1); w.direct && aligned > 0 {
		if err := w.write(b[:aligned]); err != nil {
			w.err = err
			return err
		}
		b = b[aligned:]
	}
	if w.direct {
		if err := setDirect(w.f, false); err != nil {
			w.err = err
			return err
		}
		w.direct = false
	}
	if len(b) > 0 {
		if err := w.write(b); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

// Release waits for a write in flight, stops the goroutine and returns the
// buffers to the pool without writing what is buffered; a Writer abandoned
// on an error path calls it. It is safe to call more than once.
func (w *Writer) Release() {
	if w.buf == nil {
		return
	}
	if w.work != nil {
		_ = w.wait() // the goroutine may still be reading a buffer
		close(w.work)
		bufPool.Put(w.spare) //nolint:staticcheck // a slice header is fine here: the pool is package-private
		w.spare = nil
	}
	bufPool.Put(w.buf) //nolint:staticcheck // as above
	w.buf = nil
}

// setDirect turns O_DIRECT on or off on f's descriptor.
func setDirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		flags, err := fcntl(fd, syscall.F_GETFL, 0)
		if err != nil {
			serr = err
			return
		}
		if on {
			flags |= syscall.O_DIRECT
		} else {
			flags &^= syscall.O_DIRECT
		}
		_, serr = fcntl(fd, syscall.F_SETFL, flags)
	})
	if cerr != nil {
		return cerr
	}
	return serr
}

func fcntl(fd uintptr, cmd, arg int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, uintptr(cmd), uintptr(arg))
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// Reader reads a file from its start in large aligned blocks, with O_DIRECT
// when it can: a blob read once for a push need not pass through (and
// allocate) the page cache. Its buffer is its own, not pooled: an HTTP
// transport may go on reading a request body after the request failed.
type Reader struct {
	f      *os.File
	buf    []byte
	r, w   int // unread bytes are buf[r:w]
	direct bool
	err    error
}

// NewReader reads f from offset 0, which must be its current offset.
func NewReader(f *os.File) *Reader { return newReader(f, true) }

func newReader(f *os.File, tryDirect bool) *Reader {
	rd := &Reader{f: f, buf: alignedBuf()}
	rd.direct = tryDirect && setDirect(f, true) == nil
	return rd
}

// Read implements io.Reader.
func (rd *Reader) Read(p []byte) (int, error) {
	if rd.r == rd.w {
		if rd.err != nil {
			return 0, rd.err
		}
		rd.fill()
		if rd.r == rd.w {
			return 0, rd.err
		}
	}
	n := copy(p, rd.buf[rd.r:rd.w])
	rd.r += n
	return n, nil
}

// fill reads the next block. The offset stays aligned: every read but the
// last (short, at the end of the file) is a whole buffer.
func (rd *Reader) fill() {
	n, err := io.ReadFull(rd.f, rd.buf)
	if n == 0 && rd.direct && errors.Is(err, syscall.EINVAL) {
		// The filesystem took the flag but refuses the read.
		if err = setDirect(rd.f, false); err == nil {
			rd.direct = false
			n, err = io.ReadFull(rd.f, rd.buf)
		}
	}
	rd.r, rd.w = 0, n
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		rd.err = io.EOF
	case err != nil:
		rd.err = err
	}
}

// unsafePointer is the address of b's first byte: O_DIRECT needs aligned
// memory, and Go has no other way to ask where a slice lives.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) } //nolint:gosec // read only to align, never dereferenced
