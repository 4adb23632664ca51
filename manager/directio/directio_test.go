package directio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

var sizes = []int{0, 1, 511, 4095, 4096, 4097, bufSize - 1, bufSize, bufSize + 1, 3*bufSize + 12345}

func content(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// supportsDirect says whether dir's filesystem takes O_DIRECT, so the tests
// can insist that the Writer and Reader use it there.
func supportsDirect(t *testing.T, dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_WRONLY|syscall.O_DIRECT, 0o600)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func TestWriter(t *testing.T) {
	dir := t.TempDir()
	direct := supportsDirect(t, dir)
	for _, tryDirect := range []bool{true, false} {
		for _, n := range sizes {
			// Odd write sizes: the buffer fills across calls.
			for _, chunk := range []int{1000, 4096, bufSize + 7} {
				if n > 64*1024 && chunk == 1000 && !tryDirect {
					continue
				}
				t.Run(fmt.Sprintf("direct=%v/size=%d/chunk=%d", tryDirect, n, chunk), func(t *testing.T) {
					want := content(n)
					f, err := os.Create(filepath.Join(dir, fmt.Sprintf("w-%v-%d-%d", tryDirect, n, chunk)))
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					w := newWriter(f, tryDirect)
					if got := w.Direct(); got != (tryDirect && direct) {
						t.Errorf("Direct() = %v, want %v", got, tryDirect && direct)
					}
					for p := want; len(p) > 0; {
						c := min(chunk, len(p))
						if m, err := w.Write(p[:c]); err != nil || m != c {
							t.Fatalf("Write: %d, %v", m, err)
						}
						p = p[c:]
					}
					if err := w.Finish(); err != nil {
						t.Fatal(err)
					}
					if _, err := w.Write([]byte("x")); err == nil {
						t.Error("Write after Finish succeeded")
					}
					// The file is usable normally afterwards (no O_DIRECT left).
					if _, err := f.Write([]byte("!")); err != nil {
						t.Fatalf("plain write after Finish: %v", err)
					}
					got, err := os.ReadFile(f.Name())
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, append(want, '!')) {
						t.Errorf("file has %d bytes, want %d; content differs", len(got), n+1)
					}
				})
			}
		}
	}
}

func TestReader(t *testing.T) {
	dir := t.TempDir()
	direct := supportsDirect(t, dir)
	for _, tryDirect := range []bool{true, false} {
		for _, n := range sizes {
			for _, chunk := range []int{777, 32 * 1024, 2 * bufSize} {
				t.Run(fmt.Sprintf("direct=%v/size=%d/chunk=%d", tryDirect, n, chunk), func(t *testing.T) {
					want := content(n)
					name := filepath.Join(dir, fmt.Sprintf("r-%d", n))
					if err := os.WriteFile(name, want, 0o600); err != nil {
						t.Fatal(err)
					}
					f, err := os.Open(name)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					rd := newReader(f, tryDirect)
					if got := rd.direct; got != (tryDirect && direct) {
						t.Errorf("direct = %v, want %v", got, tryDirect && direct)
					}
					var got bytes.Buffer
					if _, err := io.CopyBuffer(struct{ io.Writer }{&got}, rd, make([]byte, chunk)); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got.Bytes(), want) {
						t.Errorf("read %d bytes, want %d; content differs", got.Len(), n)
					}
					if m, err := rd.Read(make([]byte, 10)); m != 0 || !errors.Is(err, io.EOF) {
						t.Errorf("Read at the end: %d, %v; want 0, EOF", m, err)
					}
				})
			}
		}
	}
}

// TestReaderError: a read failure is returned, not taken for the end.
func TestReaderError(t *testing.T) {
	f, err := os.Open(t.TempDir()) // a directory: read(2) fails with EISDIR
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.ReadAll(NewReader(f)); err == nil {
		t.Fatal("reading a directory succeeded")
	}
}

func TestBufferAligned(t *testing.T) {
	for range 10 {
		b := alignedBuf()
		if len(b) != bufSize || cap(b) != bufSize {
			t.Fatalf("len %d cap %d", len(b), cap(b))
		}
		if p := uintptr(unsafePointer(b)); p%align != 0 {
			t.Fatalf("buffer at %#x is not %d-aligned", p, align)
		}
	}
}

// TestWriterGoroutine: the Writer's goroutine ends with Release, also when
// the data is abandoned half-way, and Finish after a failed write reports
// the failure.
func TestWriterGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f)
	if _, err := w.Write(content(3*bufSize + 100)); err != nil {
		t.Fatal(err)
	}
	w.Release()
	w.Release() // twice is fine
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Release succeeded")
	}
	waitGoroutines(t, before)

	// A write that fails (the file is read-only) surfaces, at Write or at
	// Finish, and the goroutine still ends.
	ro, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	w = NewWriter(ro)
	_, werr := w.Write(content(3 * bufSize))
	ferr := w.Finish()
	if werr == nil && ferr == nil {
		t.Error("writing to a read-only file succeeded")
	}
	w.Release()
	waitGoroutines(t, before)
}

func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	for range 100 {
		if runtime.NumGoroutine() <= want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("%d goroutines, want %d: the Writer's goroutine did not end", runtime.NumGoroutine(), want)
}
