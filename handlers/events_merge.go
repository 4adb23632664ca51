package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"
	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/manager"
)

// EngineEvents is the engine pluginsd fronts, asked for its own GET /events:
// *upstream.Proxy.
type EngineEvents interface {
	// Fetch sends the request (method and uri as the client sent them,
	// with its end-to-end headers) to the engine; the caller closes the
	// body.
	Fetch(ctx context.Context, method, uri string, header http.Header) (*http.Response, error)
}

const (
	// maxEngineEventLine bounds one line of the engine's event stream (an
	// event is a few hundred bytes).
	maxEngineEventLine = 1 << 20
	// maxEngineRefusal bounds an engine's error answer relayed as it is.
	maxEngineRefusal = 1 << 20
	// untilGrace is how long a stream with until= waits, once pluginsd's
	// side has reached until, for the engine to end its own side (or to
	// answer at all).
	untilGrace = 5 * time.Second
	// maxHeldEvents bounds the plugin events kept while the engine has not
	// answered yet.
	maxHeldEvents = 1024
)

// MergedEvents serves GET /events in front of an engine when the filters
// select plugin events and others (no type filter, or type=plugin with
// other types): one stream with the engine's events and pluginsd's plugin
// events, each line whole, so that `docker events` through one DOCKER_HOST
// shows both.
//
// pluginsd checks since and until itself (dockerd's rules and words), and
// subscribes to its own events before it asks the engine, so that nothing
// that happens while the engine answers is lost. The engine gets the
// request as the client sent it (but for Accept-Encoding: the stream is
// relayed line by line, so it must be plain); it judges the filters, and
// any answer but 200 is relayed as it is. Then pluginsd's kept events are
// written, those held while the engine answered, and from then on whatever
// either side has, in the order it arrives: within one source events keep
// their order, but the engine's replay (since=) and pluginsd's are not
// sorted into one another.
//
// The stream ends when the client leaves; when pluginsd's side ends
// (shutdown, or dropped as too slow); without until=, when the engine ends
// its side; with until=, once both sides have reached it, the engine
// getting untilGrace more. An engine that breaks its stream (a cut
// connection, a line over maxEngineEventLine) has the client's cut too, so
// that the client sees an error rather than a clean end.
func (a *API) MergedEvents(engine EngineEvents) echo.HandlerFunc {
	return func(c echo.Context) error {
		if a.events == nil {
			return errdefs.ErrNotImplemented.WithMessage("events are not available")
		}
		q, err := parseEventQuery(c)
		if err != nil {
			return err
		}
		m := &mergedStream{c: c, q: q, feed: a.openEventFeed(c.Request().Context(), q)}
		defer m.feed.close()
		return m.run(engine)
	}
}

// mergedStream is one merged GET /events, run by one goroutine (run's)
// with two helpers it owns: the engine request, then the engine reader.
type mergedStream struct {
	c    echo.Context
	q    eventQuery
	feed *eventFeed
	enc  *json.Encoder // set once the answer has started
	held []manager.Event
}

// engineAnswer is what the engine request came back with.
type engineAnswer struct {
	res *http.Response
	err error
}

func (m *mergedStream) run(engine EngineEvents) error {
	r := m.c.Request()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	header := r.Header.Clone()
	header.Set("Accept-Encoding", "identity")
	answers := make(chan engineAnswer, 1)
	go func() {
		res, err := engine.Fetch(ctx, r.Method, r.RequestURI, header) //nolint:bodyclose // handed to run, which closes it on every path
		answers <- engineAnswer{res, err}
	}()
	var (
		answered bool          // the answer has been taken from answers
		reader   *engineReader // reading a 200 answer's body
	)
	defer func() {
		cancel()
		switch {
		case reader != nil:
			<-reader.done // it closes the body
		case !answered:
			if ans := <-answers; ans.res != nil { // the request ends with ctx
				ans.res.Body.Close()
			}
		}
	}()

	ours := m.feed.sub.Events()
	deadline := m.feed.deadline
	grace := time.NewTimer(untilGrace)
	defer grace.Stop()
	if m.feed.onlyPast {
		ours = nil // until has passed: pluginsd's side is its replay alone
	} else {
		grace.Stop() // armed when pluginsd's side reaches until
	}
	var lines <-chan []byte // nil until the engine has answered, and after it ended

	for {
		select {
		case ans := <-answers:
			answered = true
			if ans.err != nil {
				if r.Context().Err() != nil {
					return nil // the client left: there is no one to answer
				}
				return echo.NewHTTPError(http.StatusBadGateway, ans.err.Error())
			}
			if ans.res.StatusCode != http.StatusOK {
				defer ans.res.Body.Close()
				m.relayRefusal(ans.res)
				return nil
			}
			if ce := ans.res.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
				ans.res.Body.Close()
				return echo.NewHTTPError(http.StatusBadGateway, fmt.Sprintf(
					"upstream engine answered GET /events with Content-Encoding %q after being asked for identity", ce))
			}
			reader = readEngineLines(ctx, ans.res.Body)
			lines = reader.lines
			if err := m.start(ans.res.Header); err != nil {
				return nil // the client went away
			}
		case ev, ok := <-ours:
			if !ok {
				m.feed.logEnd()
				if m.enc == nil {
					return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("events stream ended before the engine answered: %v", m.feed.sub.Err()))
				}
				return nil
			}
			if m.enc == nil {
				if len(m.held) == maxHeldEvents {
					return echo.NewHTTPError(http.StatusGatewayTimeout, "upstream engine did not answer GET /events")
				}
				m.held = append(m.held, ev)
				continue
			}
			if sendEvent(m.enc, m.c.Response(), ev) != nil {
				return nil
			}
		case line, ok := <-lines:
			if !ok {
				if reader.err != nil {
					logrus.WithError(reader.err).Warn("the upstream engine's events stream broke; cutting the client's")
					abortStream(m.c.Response())
					return nil
				}
				// The engine ended its side: at until, or it went away.
				// Without until the stream ends with it; with until,
				// pluginsd's side runs to until too.
				if m.q.until.IsZero() || ours == nil {
					return nil
				}
				lines = nil
				continue
			}
			resp := m.c.Response()
			if _, err := resp.Write(line); err != nil {
				return nil
			}
			resp.Flush()
		case <-deadline:
			ours, deadline = nil, nil
			if m.enc != nil && lines == nil {
				return nil
			}
			grace.Reset(untilGrace)
		case <-grace.C:
			if m.enc == nil {
				return echo.NewHTTPError(http.StatusGatewayTimeout, "upstream engine did not answer GET /events by until")
			}
			logrus.Warn("the upstream engine did not end its events stream at until; ending it")
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// start answers 200 with the engine's headers, then writes pluginsd's kept
// events and those held while the engine answered.
func (m *mergedStream) start(engineHeader http.Header) error {
	resp := m.c.Response()
	CopyEngineHeaders(resp.Header(), engineHeader, "Content-Encoding") // the stream is plain
	resp.Header().Set("Content-Type", "application/json")
	// The stream lasts as long as the client wants: no write deadline.
	_ = http.NewResponseController(resp.Writer).SetWriteDeadline(time.Time{})
	resp.WriteHeader(http.StatusOK)
	m.enc = json.NewEncoder(resp)
	for _, evs := range [][]manager.Event{m.feed.past, m.held} {
		for _, ev := range evs {
			if err := m.enc.Encode(eventMessage(ev)); err != nil {
				return err
			}
		}
	}
	m.held = nil
	resp.Flush()
	return nil
}

// relayRefusal relays an engine's answer other than 200 (a filter it
// refuses, say) as it comes, flushing as it goes: an answer whose body
// does not end still shows its status.
func (m *mergedStream) relayRefusal(res *http.Response) {
	resp := m.c.Response()
	CopyEngineHeaders(resp.Header(), res.Header)
	resp.WriteHeader(res.StatusCode)
	resp.Flush()
	buf := make([]byte, 32<<10)
	body := io.LimitReader(res.Body, maxEngineRefusal)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := resp.Write(buf[:n]); werr != nil {
				return
			}
			resp.Flush()
		}
		if err != nil {
			return
		}
	}
}

// abortStream cuts the client's connection in the middle of a response, so
// that it sees a truncated stream (the CLI: "unexpected EOF") instead of a
// clean end. The response has started: what runs after the handler reports
// it as it was sent.
func abortStream(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // net/http closes the connection
	}
	conn.Close()
}

// engineReader reads the engine's event stream line by line, so that its
// events and pluginsd's are never cut into one another.
type engineReader struct {
	lines chan []byte   // closed at the end of the body
	done  chan struct{} // closed when the reader has returned
	err   error         // why it ended, if not a clean end; set before lines closes
}

// readEngineLines starts the reader; it returns once ctx ends or the body
// ends, and closes body.
func readEngineLines(ctx context.Context, body io.ReadCloser) *engineReader {
	er := &engineReader{lines: make(chan []byte), done: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() { body.Close() })
	go func() {
		defer close(er.done)
		defer stop()
		defer body.Close()
		defer close(er.lines)
		br := bufio.NewReaderSize(body, 64<<10)
		for {
			line, err := readLine(br, maxEngineEventLine)
			if err != nil && !errors.Is(err, io.EOF) {
				line = nil // cut in the middle: the part of a line is no event
			}
			if len(bytes.TrimSpace(line)) > 0 {
				if line[len(line)-1] != '\n' {
					// The last line, after a clean end: a whole event gets the
					// "\n" that what follows needs; a part of one means the
					// stream broke, as the client would see it from the engine.
					if !json.Valid(line) {
						er.err = errors.New("the stream ended in the middle of an event")
						return
					}
					line = append(line, '\n')
				}
				select {
				case er.lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					er.err = err
				}
				return
			}
		}
	}()
	return er
}

// errLongLine: the engine sent a line longer than the limit.
var errLongLine = fmt.Errorf("a line longer than %d bytes", maxEngineEventLine)

// readLine returns the next line with its "\n" (the last one may lack it),
// or errLongLine past limit bytes.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, errLongLine
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

// CopyEngineHeaders copies an engine's end-to-end response headers to a
// response pluginsd writes itself, leaving out those net/http computes for
// the body it sends and the canonical keys in skip.
func CopyEngineHeaders(dst, src http.Header, skip ...string) {
	for k, vs := range src {
		switch k = http.CanonicalHeaderKey(k); k {
		case "Content-Length", "Date", "Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Upgrade":
			continue
		}
		if slices.Contains(skip, k) {
			continue
		}
		dst[k] = append([]string(nil), vs...)
	}
}
