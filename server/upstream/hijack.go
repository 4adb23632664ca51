package upstream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
)

// rawHijackPath matches the endpoints an engine hijacks without an Upgrade
// header: attach and exec start (old clients).
var rawHijackPath = regexp.MustCompile(`^(/v[0-9.]+)?/(containers/[^/]+/attach|exec/[^/]+/start)$`)

// isRawHijack reports whether r may be answered with a raw stream that takes
// over the connection without a protocol switch.
func isRawHijack(r *http.Request) bool {
	if r.Method != http.MethodPost || upgradeRequested(r.Header) {
		return false
	}
	path, _, _ := strings.Cut(r.RequestURI, "?")
	return rawHijackPath.MatchString(path)
}

// upgradeRequested reports whether the header asks for a protocol switch.
func upgradeRequested(h http.Header) bool {
	for _, v := range h.Values("Connection") {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return h.Get("Upgrade") != ""
			}
		}
	}
	return false
}

// rawStream reports whether the engine answered with a stream that owns the
// rest of the connection (dockerd writes "200 OK" and a raw-stream content
// type, and no length, then hijacks).
func rawStream(res *http.Response) bool {
	if res.StatusCode != http.StatusOK || res.ContentLength != -1 || len(res.TransferEncoding) > 0 {
		return false
	}
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	return mt == "application/vnd.docker.raw-stream" || mt == "application/vnd.docker.multiplexed-stream"
}

// serveRaw forwards an attach or exec start sent without Upgrade on a
// connection of its own. A raw-stream answer takes over the client's
// connection, and the two are spliced until both sides are done; any other
// answer is relayed as a plain response.
func (p *Proxy) serveRaw(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	fail := func(err error) error {
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the client left: there is no one to answer
		}
		return &Error{Target: p.target.raw, Err: err}
	}
	back, err := p.dial(ctx, "", "")
	if err != nil {
		return fail(err)
	}
	//nolint:gosec // G704: the host is the configured engine; the client chooses only the path, as it would talking to the engine directly
	out, err := http.NewRequestWithContext(ctx, r.Method, "http://"+p.target.host+r.RequestURI, nil)
	if err != nil {
		back.Close()
		return fail(err)
	}
	out.Host = p.target.host
	for k, vs := range r.Header {
		if !hopByHop(k) {
			out.Header[k] = append([]string(nil), vs...)
		}
	}
	if r.ContentLength != 0 {
		out.Body, out.ContentLength = r.Body, r.ContentLength
	}
	// Unblock the reads below if the client leaves before the answer.
	stop := context.AfterFunc(ctx, func() { back.Close() })
	if err := out.Write(back); err != nil {
		stop()
		back.Close()
		return fail(err)
	}
	br := bufio.NewReader(back)
	res, err := http.ReadResponse(br, out)
	if err != nil {
		stop()
		back.Close()
		return fail(err)
	}
	if !stop() {
		back.Close()
		return nil // the client left
	}
	if !rawStream(res) {
		defer back.Close()
		defer res.Body.Close()
		h := w.Header()
		for k, vs := range res.Header {
			if !hopByHop(k) {
				h[k] = vs
			}
		}
		w.WriteHeader(res.StatusCode)
		_, _ = io.Copy(flushWriter{w}, res.Body)
		return nil
	}

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		back.Close()
		return fail(fmt.Errorf("taking over the client connection: %w", err))
	}
	defer conn.Close()
	defer back.Close()
	// The engine's header, as it sent it (status line, then its fields).
	_, _ = fmt.Fprintf(brw, "HTTP/%d.%d %s\r\n", res.ProtoMajor, res.ProtoMinor, res.Status)
	_ = res.Header.Write(brw)
	_, _ = brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		return nil
	}
	splice(conn, brw.Reader, back, br)
	return nil
}

// splice copies client→engine and engine→client until both directions are
// done; the end of one direction is passed on as a half-close, as an attach
// client expects (it closes stdin, then reads the rest of the output).
func splice(client net.Conn, fromClient io.Reader, engine net.Conn, fromEngine io.Reader) {
	var wg sync.WaitGroup
	half := func(dst net.Conn, src io.Reader) {
		_, err := io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			_ = cw.CloseWrite()
			return
		}
		// Without a half-close, or after an error, end both ways.
		client.Close()
		engine.Close()
	}
	wg.Go(func() { half(engine, fromClient) })
	wg.Go(func() { half(client, fromEngine) })
	wg.Wait()
}

// flushWriter flushes after every write (a relayed response may be a
// stream).
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if err == nil {
		err = http.NewResponseController(f.w).Flush()
	}
	return n, err
}
