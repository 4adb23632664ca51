package runtime

import (
	"bytes"
	"io"
	"os"
	"strings"
	"time"
)

const (
	// maxLogSize is the size past which Start rotates a plugin's log to
	// <id>.log.1 (replacing an older one).
	maxLogSize = 16 << 20
	// maxLogLine is the longest line relayed as one message.
	maxLogLine = 16 << 10
	// relayInterval is how often the relay looks for new output.
	relayInterval = 100 * time.Millisecond
	// tailLines is how many lines of output a failed start quotes.
	tailLines = 10
)

// openLog opens the plugin's log for appending, rotating it first when it
// has grown too large, and returns it with its current size: where this
// run's output begins.
func openLog(p string) (*os.File, int64, error) {
	if fi, err := os.Stat(p); err == nil && fi.Size() > maxLogSize {
		_ = os.Rename(p, p+".1")
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// relayLog sends each line the plugin writes from offset on to the logger,
// until the task ends (then it reads what is left) or the runtime closes.
func (r *Runtime) relayLog(t *Task, offset int64) {
	log := r.log.WithField("plugin", t.id)
	f, err := os.Open(t.logPath)
	if err != nil {
		log.WithError(err).Warn("cannot relay plugin output")
		return
	}
	defer f.Close()
	var pending []byte
	buf := make([]byte, 32<<10)
	emit := func(line []byte) {
		if s := strings.TrimRight(string(line), "\r"); s != "" {
			log.Info(s)
		}
	}
	drain := func(final bool) {
		if fi, err := f.Stat(); err == nil && fi.Size() < offset {
			offset, pending = 0, nil // truncated by someone else: start over
		}
		for {
			n, err := f.ReadAt(buf, offset)
			offset += int64(n)
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				emit(pending[:i])
				pending = pending[i+1:]
			}
			for len(pending) >= maxLogLine {
				emit(pending[:maxLogLine])
				pending = pending[maxLogLine:]
			}
			if err != nil || n < len(buf) {
				break
			}
		}
		if final && len(pending) > 0 {
			emit(pending)
			pending = nil
		}
		pending = bytes.Clone(pending) // let the read buffer's history go
	}
	tick := time.NewTicker(relayInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.done:
			drain(true)
			return
		case <-tick.C:
			drain(false)
		}
	}
}

// tailOutput returns the last lines written to the log at p from offset on.
func tailOutput(p string, offset int64) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	const window = 64 << 10
	from := max(offset, fi.Size()-window)
	b, err := io.ReadAll(io.NewSectionReader(f, from, fi.Size()-from))
	if err != nil || len(b) == 0 {
		return ""
	}
	var lines []string
	for l := range strings.SplitSeq(strings.TrimRight(string(b), "\n"), "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.Join(lines, "\n")
}

// RemoveLogs deletes the log files of plugin id (when the plugin itself is
// removed). A plugin that is still running keeps writing to its open file,
// so call it after Stop.
func (r *Runtime) RemoveLogs(id string) error {
	for _, p := range []string{r.logPath(id), r.logPath(id) + ".1"} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// LogIDs lists the plugin IDs that have log files, so that the owner can
// delete those of plugins that no longer exist (a remove interrupted after
// the plugin was gone but before its logs were).
func (r *Runtime) LogIDs() ([]string, error) {
	entries, err := os.ReadDir(r.cfg.LogRoot)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ids []string
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".1")
		id, ok := strings.CutSuffix(name, ".log")
		if !ok || validateID(id) != nil || seen[id] {
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}
