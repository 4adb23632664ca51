package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"
	"github.com/sirupsen/logrus"
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
	// side has reached until, for the engine to end its own side.
	untilGrace = 5 * time.Second
)

// MergedEvents serves GET /events in front of an engine when the filters
// select plugin events and others (no type filter, or type=plugin with
// other types): one stream with the engine's events and pluginsd's plugin
// events, each line whole, so that `docker events` through one DOCKER_HOST
// shows both.
//
// The engine is asked first, with the request as the client sent it; it
// judges the filters and times against its own rules, and any answer but
// 200 is relayed as it is. Then pluginsd's kept events are written, and
// from then on whatever either side has, in the order it arrives: within
// one source events keep their order, but the engine's replay (since=) and
// pluginsd's are not sorted into one another. The stream ends when the
// client leaves, when the engine ends its side without until= (it went
// away), when pluginsd's side ends (shutdown, or dropped as too slow), or
// with until= once both sides have reached it.
func (a *API) MergedEvents(engine EngineEvents) echo.HandlerFunc {
	return func(c echo.Context) error {
		if a.events == nil {
			return errdefs.ErrNotImplemented.WithMessage("events are not available")
		}
		q, err := parseEventQuery(c)
		if err != nil {
			return err
		}
		r := c.Request()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		res, err := engine.Fetch(ctx, r.Method, r.RequestURI, r.Header)
		if err != nil {
			if r.Context().Err() != nil {
				return nil // the client left: there is no one to answer
			}
			return echo.NewHTTPError(http.StatusBadGateway, err.Error())
		}
		defer res.Body.Close()
		resp := c.Response()
		copyStreamHeaders(resp.Header(), res.Header)
		if res.StatusCode != http.StatusOK {
			resp.WriteHeader(res.StatusCode)
			_, _ = io.Copy(resp, io.LimitReader(res.Body, maxEngineRefusal))
			return nil
		}

		feed := a.openEventFeed(ctx, q)
		defer feed.close()
		lines, readerDone := engineLines(ctx, res.Body)
		defer func() {
			cancel()
			res.Body.Close()
			<-readerDone
		}()

		_ = http.NewResponseController(resp.Writer).SetWriteDeadline(time.Time{})
		resp.Header().Set("Content-Type", "application/json")
		resp.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(resp)
		for _, ev := range feed.past {
			if err := enc.Encode(eventMessage(ev)); err != nil {
				return nil
			}
		}
		resp.Flush()

		ours := feed.sub.Events()
		deadline := feed.deadline
		grace := time.NewTimer(untilGrace)
		defer grace.Stop()
		if feed.onlyPast {
			ours = nil // until has passed: pluginsd's side is done, grace runs
		} else {
			grace.Stop() // armed when pluginsd's side reaches until
		}
		for {
			select {
			case ev, ok := <-ours:
				if !ok {
					feed.logEnd()
					return nil
				}
				if err := enc.Encode(eventMessage(ev)); err != nil {
					return nil
				}
				resp.Flush()
			case line, ok := <-lines:
				if !ok {
					// The engine ended its side: at until, or because it went
					// away. Without until the stream ends with it; with until,
					// pluginsd's side runs to until too.
					if q.until.IsZero() || ours == nil {
						return nil
					}
					lines = nil
					continue
				}
				if _, err := resp.Write(line); err != nil {
					return nil
				}
				resp.Flush()
			case <-deadline:
				ours, deadline = nil, nil
				if lines == nil {
					return nil
				}
				grace.Reset(untilGrace)
			case <-grace.C:
				logrus.Warn("the upstream engine did not end its events stream at until; ending it")
				return nil
			case <-ctx.Done():
				return nil
			}
			if ours == nil && lines == nil {
				return nil
			}
		}
	}
}

// engineLines reads the engine's event stream line by line, so that its
// events and pluginsd's are never cut into one another. The channel is
// closed at the end of the body (or when a line is over
// maxEngineEventLine); done is closed when the reader has returned, which
// it does once ctx ends or the body is closed.
func engineLines(ctx context.Context, body io.Reader) (<-chan []byte, <-chan struct{}) {
	lines := make(chan []byte)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		br := bufio.NewReaderSize(body, 64<<10)
		for {
			line, err := readLine(br, maxEngineEventLine)
			if len(bytes.TrimSpace(line)) > 0 {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					logrus.WithError(err).Warn("reading the upstream engine's events")
				}
				return
			}
		}
	}()
	return lines, done
}

// errLongLine: the engine sent a line longer than the limit.
var errLongLine = errors.New("event line too long")

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

// copyStreamHeaders copies the engine's end-to-end response headers for a
// stream pluginsd writes itself: not those net/http computes for the body.
func copyStreamHeaders(dst, src http.Header) {
	for k, vs := range src {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Date", "Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Upgrade":
			continue
		}
		dst[k] = append([]string(nil), vs...)
	}
}
