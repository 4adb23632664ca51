package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/manager"
)

// streamLine is one line of Docker's JSON progress stream (jsonmessage):
// the API module's jsonstream.Message lacks the legacy "error" and
// "progress" strings that clients still read, so the line is spelled here.
type streamLine struct {
	Status         string          `json:"status,omitempty"`
	ProgressDetail *progressDetail `json:"progressDetail,omitempty"`
	Progress       string          `json:"progress,omitempty"`
	ID             string          `json:"id,omitempty"`
	ErrorDetail    *errorDetail    `json:"errorDetail,omitempty"`
	Error          string          `json:"error,omitempty"`
	Aux            any             `json:"aux,omitempty"`
}

type progressDetail struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

type errorDetail struct {
	Message string `json:"message"`
}

// jsonStream adapts manager progress to the response. Headers go out with
// the first line, so an error before any progress keeps its real status;
// after that, errors are reported in-stream as the last line. Lines are
// serialised by mu (the manager reports from several goroutines) and
// flushed one by one.
type jsonStream struct {
	c      echo.Context
	cancel context.CancelCauseFunc // stops the operation when the client goes away

	mu        sync.Mutex // guards committed, broken and writes
	committed bool
	broken    bool
}

func newJSONStream(c echo.Context, cancel context.CancelCauseFunc) *jsonStream {
	// Progress streams run as long as the transfer; no write deadline.
	_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Time{})
	return &jsonStream{c: c, cancel: cancel}
}

// progress is the manager.ProgressFunc.
func (s *jsonStream) progress(p manager.Progress) {
	l := streamLine{Status: p.Status, ID: p.ID}
	if p.Detail {
		l.ProgressDetail = &progressDetail{Current: p.Current, Total: p.Total}
		if p.Total > 0 || p.Current > 0 {
			l.Progress = progressBar(p.Current, p.Total)
		}
	}
	if p.Aux != nil {
		l.Aux = p.Aux
		l.ProgressDetail = &progressDetail{}
	}
	s.write(l)
}

func (s *jsonStream) write(l streamLine) {
	// json.Marshal escapes HTML (">" as \u003e), as dockerd's stream does.
	b, err := json.Marshal(l)
	if err != nil {
		logrus.WithError(err).Error("encoding a progress line")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return
	}
	resp := s.c.Response()
	if !s.committed {
		resp.Header().Set("Content-Type", "application/json")
		resp.WriteHeader(http.StatusOK)
		s.committed = true
	}
	if _, err := resp.Write(append(b, '\r', '\n')); err != nil {
		s.broken = true
		s.cancel(fmt.Errorf("client went away: %w", err))
		return
	}
	resp.Flush()
}

// finish ends the stream: nil stays nil; an error before the first line is
// returned (the error handler answers with its status); an error after it
// becomes the last line.
func (s *jsonStream) finish(err error) error {
	if err == nil {
		return nil
	}
	s.mu.Lock()
	committed := s.committed
	s.mu.Unlock()
	if !committed {
		return err
	}
	msg := err.Error()
	s.write(streamLine{ErrorDetail: &errorDetail{Message: msg}, Error: msg})
	return nil
}

// progressBar renders Docker's textual bar, e.g. "[==>     ]  12.3MB/45.6MB".
func progressBar(current, total int64) string {
	if total <= 0 {
		return humanSize(current)
	}
	const width = 50
	n := min(int(float64(width)*float64(current)/float64(total)), width)
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	return fmt.Sprintf("[%s] %8s/%s", bar, humanSize(current), humanSize(total))
}

// humanSize formats bytes with decimal units and four significant digits,
// as Docker's go-units HumanSize does ("65.54kB", "4.788MB").
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}
