package authz

import (
	"bufio"
	"bytes"
	"maps"
	"net"
	"net/http"
)

// recorder is the handler's http.ResponseWriter while the middleware holds
// the response back for the response phase. It buffers the status, headers
// and body until either the response phase allows them (commit) or the
// response turns out to be a stream: on the handler's first Flush, or when
// the body outgrows the buffer, everything so far is written through to w
// and the rest follows as it comes (streamed). A streamed response can no
// longer be vetoed.
//
// A recorder is used by one handler goroutine; it needs no lock.
type recorder struct {
	w      http.ResponseWriter // the real response
	max    int
	header http.Header // what the handler sets; copied to w when sent
	buf    bytes.Buffer

	status      int
	wroteHeader bool
	streamed    bool // the header and the buffer have gone to w
	hijacked    bool // the handler took the connection over
}

func newRecorder(w http.ResponseWriter, max int) *recorder {
	return &recorder{w: w, max: max, header: http.Header{}}
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.wroteHeader || r.hijacked {
		return
	}
	r.wroteHeader = true
	r.status = code
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.hijacked {
		return 0, http.ErrHijacked
	}
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	if !r.streamed && r.buf.Len()+len(b) > r.max {
		if err := r.stream(); err != nil {
			return 0, err
		}
	}
	if r.streamed {
		return r.w.Write(b)
	}
	return r.buf.Write(b)
}

// FlushError is what http.ResponseController (and so echo's
// Response.Flush) calls: a handler that flushes is streaming.
func (r *recorder) FlushError() error {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	if err := r.stream(); err != nil {
		return err
	}
	return http.NewResponseController(r.w).Flush()
}

// Hijack hands the connection over to the handler (attach and exec, when
// pluginsd proxies to an engine). Like a stream, a hijacked connection
// cannot be vetoed in the response phase.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(r.w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	r.hijacked, r.streamed = true, true
	return conn, brw, nil
}

// Unwrap lets http.ResponseController reach the connection's other
// controls (write deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.w }

// stream sends what is held back and makes the recorder write through.
func (r *recorder) stream() error {
	if r.streamed {
		return nil
	}
	r.streamed = true
	return r.send()
}

// finish records the implicit 200 of a handler that wrote nothing.
func (r *recorder) finish() {
	if !r.wroteHeader && !r.hijacked {
		r.WriteHeader(http.StatusOK)
	}
}

// commit sends a response that was held back (the response phase allowed
// it); a streamed one is already out.
func (r *recorder) commit() error {
	if r.streamed {
		return nil
	}
	r.streamed = true
	return r.send()
}

func (r *recorder) send() error {
	maps.Copy(r.w.Header(), r.header)
	r.w.WriteHeader(r.status)
	if r.buf.Len() == 0 {
		return nil
	}
	_, err := r.w.Write(r.buf.Bytes())
	r.buf.Reset()
	return err
}
