package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluginsd/pluginsd/handlers"
	"github.com/pluginsd/pluginsd/manager"
)

// eventEngine is an engine whose GET /events the test drives: it answers
// status (200 unless set), then writes what is sent on lines until that is
// closed (the engine ends its stream) or the client leaves.
type eventEngine struct {
	sock   string
	status int
	lines  chan string
	// Set before the first request:
	hold     chan struct{} // if set, the answer waits until it is closed
	breaks   bool          // the stream ends with a cut connection, not a clean end
	encoding string        // a Content-Encoding to claim

	mu       sync.Mutex
	seen     []string
	encoders []string // the Accept-Encoding of each request
}

func newEventEngine(t *testing.T, status int) *eventEngine {
	t.Helper()
	dir, err := os.MkdirTemp("", "ee")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &eventEngine{sock: filepath.Join(dir, "e.sock"), status: status, lines: make(chan string)}
	l, err := net.Listen("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return e
}

func (e *eventEngine) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.seen = append(e.seen, r.Method+" "+r.RequestURI)
	e.encoders = append(e.encoders, r.Header.Get("Accept-Encoding"))
	e.mu.Unlock()
	if e.hold != nil {
		select {
		case <-e.hold:
		case <-r.Context().Done():
			return
		}
	}
	if e.encoding != "" {
		w.Header().Set("Content-Encoding", e.encoding)
	}
	w.Header().Set("Api-Version", "1.41")
	w.Header().Set("Server", "Libpod/4.3.1 (linux)")
	w.Header().Set("Content-Type", "application/json")
	if e.status != http.StatusOK {
		w.WriteHeader(e.status)
		_, _ = io.WriteString(w, `{"cause":"bad","message":"engine says no","response":400}`+"\n")
		return
	}
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	for {
		select {
		case l, ok := <-e.lines:
			if !ok {
				if e.breaks {
					panic(http.ErrAbortHandler) // no last chunk: the connection is cut
				}
				return
			}
			_, _ = io.WriteString(w, l)
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
	}
}

func (e *eventEngine) taken() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.seen
	e.seen = nil
	return s
}

// mergedServer is pluginsd in front of e, with the event bus of
// eventsServer (a create, an enable and a remove at evAt(1..3)).
func mergedServer(t *testing.T, e *eventEngine) (*manager.EventBus, http.Handler) {
	t.Helper()
	bus := manager.NewEventBus(manager.EventBusConfig{})
	bus.Publish(manager.Event{Action: "create", ID: evID, Name: "vol:latest", Time: evAt(1)})
	bus.Publish(manager.Event{Action: "enable", ID: evID, Name: "vol", Time: evAt(2)})
	bus.Publish(manager.Event{Action: "remove", ID: evID, Name: "c02157", Time: evAt(3)})
	t.Cleanup(bus.Close)
	s := New(Config{Info: handlers.Info{Version: "0.0.0-test"}, Events: bus, Upstream: upstreamTo(t, e.sock)}, &fakeBackend{})
	return bus, s.Handler()
}

const engineStart = `{"Type":"container","Action":"start","Actor":{"ID":"c0ffee"},"scope":"local","time":1700000005}`

// Without a type filter, or with one that includes plugin, a stream in
// front of an engine carries both: the engine's lines whole and pluginsd's
// plugin events, replayed and live, the engine's headers, and the engine
// asked exactly what the client asked.
func TestMergedEventsStream(t *testing.T) {
	for _, filters := range []string{"", `{"type":["container","plugin"]}`, `{"event":{"start":true,"enable":true,"disable":true}}`} {
		t.Run(filters, func(t *testing.T) {
			e := newEventEngine(t, http.StatusOK)
			bus, h := mergedServer(t, e)
			target := eventsQuery(unixArg(evAt(2)), "", filters)
			lines, status, header, cancel := streamEvents(t, h, target)
			if status != http.StatusOK || header.Get("Content-Type") != "application/json" || header.Get("Server") != "Libpod/4.3.1 (linux)" {
				t.Fatalf("response %d %v", status, header)
			}
			// pluginsd's replay (since= evAt(2)): the enable, and the remove
			// unless the filter is on events.
			wantLine(t, lines, "replayed", wireEvent("enable", evID, "vol", evAt(2)))
			if filters == "" || strings.Contains(filters, "type") {
				wantLine(t, lines, "replayed", wireEvent("remove", evID, "c02157", evAt(3)))
			}
			waitSubscribers(t, bus, 1)
			// The engine's line arrives in two writes: it reaches the client whole.
			e.lines <- engineStart[:20]
			e.lines <- engineStart[20:] + "\n"
			wantLine(t, lines, "engine line", engineStart)
			now := time.Now()
			bus.Publish(manager.Event{Action: "disable", ID: evID, Name: "vol", Time: now})
			wantLine(t, lines, "live plugin event", wireEvent("disable", evID, "vol", now))
			e.lines <- engineStart + "\n"
			wantLine(t, lines, "engine line", engineStart)
			if diff := cmp.Diff([]string{"GET " + target}, e.taken()); diff != "" {
				t.Errorf("engine asked (-want +got):\n%s", diff)
			}
			cancel()
			waitSubscribers(t, bus, 0)
		})
	}
}

// Filters that select no plugin events stay the engine's alone, and so do
// streams when the engine refuses: its status and message reach the client.
func TestMergedEventsNotMerged(t *testing.T) {
	for _, filters := range []string{`{"type":["container"]}`, `{"container":["c0ffee"]}`, `{"type":["plugin","container"],"label":["a=b"]}`} {
		// An engine for each stream: the last one's handler may still be
		// waiting for a line when the next stream starts.
		e := newEventEngine(t, http.StatusOK)
		bus, h := mergedServer(t, e)
		lines, status, _, cancel := streamEvents(t, h, eventsQuery("", "", filters))
		if status != http.StatusOK {
			t.Fatalf("%s: status %d", filters, status)
		}
		e.lines <- engineStart + "\n"
		if l, _ := nextLine(t, lines); l != engineStart {
			t.Errorf("%s: engine line %s", filters, l)
		}
		if n := bus.Subscribers(); n != 0 {
			t.Errorf("%s: %d subscribers to plugin events", filters, n)
		}
		cancel()
	}

	refusing := newEventEngine(t, http.StatusBadRequest)
	bus, h := mergedServer(t, refusing)
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + eventsQuery("", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "engine says no") {
		t.Errorf("refused stream: %d %s", res.StatusCode, body)
	}
	if n := bus.Subscribers(); n != 0 {
		t.Errorf("%d subscribers after a refused stream", n)
	}
}

// With until in the past, both replays and then the end, once the engine
// has ended its side; without until, the engine ending its side (it went
// away) ends the stream.
func TestMergedEventsEnd(t *testing.T) {
	e := newEventEngine(t, http.StatusOK)
	_, h := mergedServer(t, e)
	lines, _, _, _ := streamEvents(t, h, eventsQuery(unixArg(evAt(3)), unixArg(evAt(4)), ""))
	wantLine(t, lines, "replayed", wireEvent("remove", evID, "c02157", evAt(3)))
	e.lines <- engineStart + "\n"
	wantLine(t, lines, "engine line", engineStart)
	e.lines <- engineStart // no newline: the engine's last line is relayed as it is
	close(e.lines)
	wantLine(t, lines, "engine's last line", engineStart)
	if l, ok := nextLine(t, lines); ok {
		t.Errorf("line after both ended: %s", l)
	}

	e = newEventEngine(t, http.StatusOK)
	bus, h := mergedServer(t, e)
	lines, _, _, _ = streamEvents(t, h, eventsQuery(unixArg(time.Now()), "", ""))
	waitSubscribers(t, bus, 1)
	close(e.lines)
	if l, ok := nextLine(t, lines); ok {
		t.Errorf("line after the engine ended: %s", l)
	}
	waitSubscribers(t, bus, 0)
}

// With until in the future, pluginsd's side runs to until even after the
// engine has ended its own.
func TestMergedEventsUntilFuture(t *testing.T) {
	e := newEventEngine(t, http.StatusOK)
	bus, h := mergedServer(t, e)
	until := time.Now().Add(time.Second)
	lines, _, _, _ := streamEvents(t, h, eventsQuery(unixArg(time.Now()), unixArg(until), ""))
	waitSubscribers(t, bus, 1)
	close(e.lines)
	bus.Publish(manager.Event{Action: "enable", ID: evID, Name: "vol"})
	if l, _ := nextLine(t, lines); !strings.Contains(l, `"Action":"enable"`) {
		t.Errorf("live line %s", l)
	}
	if l, ok := nextLine(t, lines); ok {
		t.Errorf("line after until: %s", l)
	}
	if time.Now().Before(until) {
		t.Error("stream ended before until")
	}
	waitSubscribers(t, bus, 0)
}

// A line longer than the limit from the engine ends the stream rather than
// buffering without bound.
func TestMergedEventsLongLine(t *testing.T) {
	e := newEventEngine(t, http.StatusOK)
	bus, h := mergedServer(t, e)
	lines, _, _, _ := streamEvents(t, h, eventsQuery(unixArg(time.Now()), "", ""))
	waitSubscribers(t, bus, 1)
	go func() { e.lines <- strings.Repeat("x", 2<<20) }()
	// The handler ends (and unsubscribes) on its own; relaying the line
	// would keep the stream open.
	waitSubscribers(t, bus, 0)
	if l, ok := nextLine(t, lines); ok {
		t.Errorf("line relayed: %.40s... (%d bytes)", l, len(l))
	}
}

// An engine that ignores until and streams on is cut off a grace period
// after until, rather than holding the stream open for ever.
func TestMergedEventsEngineIgnoresUntil(t *testing.T) {
	e := newEventEngine(t, http.StatusOK)
	bus, h := mergedServer(t, e)
	lines, _, _, _ := streamEvents(t, h, eventsQuery(unixArg(evAt(3)), unixArg(evAt(4)), ""))
	wantLine(t, lines, "replayed", wireEvent("remove", evID, "c02157", evAt(3)))
	e.lines <- engineStart + "\n"
	wantLine(t, lines, "engine line", engineStart)
	// The engine keeps its stream open; the handler must end on its own
	// (nextLine gives up after 10 s, the grace is 5 s).
	if l, ok := nextLine(t, lines); ok {
		t.Errorf("line after until: %s", l)
	}
	waitSubscribers(t, bus, 0)
}

// wantLine checks that the next line of the stream is want.
func wantLine(t *testing.T, lines <-chan string, what, want string) {
	t.Helper()
	if l, _ := nextLine(t, lines); l != want {
		t.Errorf("%s:\n got %s\nwant %s", what, l, want)
	}
}

// Plugin events that happen while the engine has not answered yet are held
// and written once it has, after the replay; the engine is asked for a
// plain stream whatever the client accepts.
func TestMergedEventsEngineSlowToAnswer(t *testing.T) {
	e := newEventEngine(t, http.StatusOK)
	e.hold = make(chan struct{})
	bus, h := mergedServer(t, e)
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+eventsQuery(unixArg(evAt(3)), "", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "gzip")
	type result struct {
		res *http.Response
		err error
	}
	got := make(chan result, 1)
	go func() {
		res, err := srv.Client().Transport.RoundTrip(req) // the Transport: no gzip decoding of its own
		got <- result{res, err}
	}()
	waitSubscribers(t, bus, 1) // subscribed before the engine answers
	now := time.Now()
	bus.Publish(manager.Event{Action: "disable", ID: evID, Name: "vol", Time: now})
	close(e.hold)
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.res.Body.Close()
	if r.res.StatusCode != http.StatusOK || r.res.Header.Get("Content-Encoding") != "" {
		t.Fatalf("answer %d %v", r.res.StatusCode, r.res.Header)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r.res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	wantLine(t, lines, "replayed", wireEvent("remove", evID, "c02157", evAt(3)))
	wantLine(t, lines, "held while the engine answered", wireEvent("disable", evID, "vol", now))
	e.lines <- engineStart + "\n"
	wantLine(t, lines, "engine line", engineStart)
	e.mu.Lock()
	defer e.mu.Unlock()
	if diff := cmp.Diff([]string{"identity"}, e.encoders); diff != "" {
		t.Errorf("Accept-Encoding sent to the engine (-want +got):\n%s", diff)
	}
}

// An engine that never answers does not hold a stream with until= open for
// ever (504 once until and the grace have passed), nor a shutdown: closing
// the event bus ends a stream still waiting for the engine (503).
func TestMergedEventsEngineNeverAnswers(t *testing.T) {
	e := newEventEngine(t, http.StatusOK)
	e.hold = make(chan struct{})
	defer close(e.hold)
	bus, h := mergedServer(t, e)
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := srv.Client()
	client.Timeout = 30 * time.Second // a stream that never ends fails the test, not the run

	res, err := client.Get(srv.URL + eventsQuery(unixArg(evAt(0)), unixArg(time.Now().Add(-time.Second)), ""))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "did not answer") {
		t.Errorf("until passed, engine silent: %d %s", res.StatusCode, body)
	}

	got := make(chan int, 1)
	go func() {
		res, err := client.Get(srv.URL + eventsQuery("", "", ""))
		if err != nil {
			got <- 0
			return
		}
		res.Body.Close()
		got <- res.StatusCode
	}()
	waitSubscribers(t, bus, 1)
	bus.Close()
	select {
	case status := <-got:
		if status != http.StatusServiceUnavailable {
			t.Errorf("bus closed while the engine was silent: %d, want 503", status)
		}
	case <-time.After(5 * time.Second):
		t.Error("the stream did not end when the bus closed")
	}
}

// An engine stream that breaks (the connection cut) breaks the client's
// too, rather than ending it cleanly; an engine's last line without "\n"
// is ended before pluginsd's next event.
func TestMergedEventsEngineBreaks(t *testing.T) {
	e := newEventEngine(t, http.StatusOK)
	e.breaks = true
	bus, h := mergedServer(t, e)
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + eventsQuery(unixArg(time.Now()), "", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	waitSubscribers(t, bus, 1)
	e.lines <- engineStart + "\n"
	e.lines <- `{"Type":"cont` // and then the connection is cut
	close(e.lines)
	body, err := io.ReadAll(res.Body)
	if err == nil || string(body) != engineStart+"\n" {
		t.Errorf("client read %q, %v; want the engine's whole line, then an error", body, err)
	}

	// A clean end in the middle of an event is a broken stream too.
	e = newEventEngine(t, http.StatusOK)
	bus, h = mergedServer(t, e)
	srv2 := httptest.NewServer(h)
	defer srv2.Close()
	c2 := srv2.Client()
	c2.Timeout = 30 * time.Second // the old behaviour would hold the stream to until
	res2, err := c2.Get(srv2.URL + eventsQuery(unixArg(time.Now()), unixArg(time.Now().Add(time.Hour)), ""))
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	waitSubscribers(t, bus, 1)
	e.lines <- engineStart + "\n"
	e.lines <- `{"Type":"cont`
	close(e.lines)
	body, err = io.ReadAll(res2.Body)
	if err == nil || string(body) != engineStart+"\n" {
		t.Errorf("clean end mid-event: client read %q, %v; want the engine's whole line, then an error", body, err)
	}

	e = newEventEngine(t, http.StatusOK)
	bus, h = mergedServer(t, e)
	lines, _, _, _ := streamEvents(t, h, eventsQuery(unixArg(time.Now()), unixArg(time.Now().Add(time.Hour)), ""))
	waitSubscribers(t, bus, 1)
	e.lines <- `{"Type":"container","Action":"die"}` // no newline, and the engine ends
	close(e.lines)
	wantLine(t, lines, "engine's last line", `{"Type":"container","Action":"die"}`)
	now := time.Now()
	bus.Publish(manager.Event{Action: "enable", ID: evID, Name: "vol", Time: now})
	wantLine(t, lines, "plugin event after it", wireEvent("enable", evID, "vol", now))
}

// An engine that compresses its stream although asked not to is refused:
// plain lines cannot be mixed into it.
func TestMergedEventsEngineEncodes(t *testing.T) {
	e := newEventEngine(t, http.StatusOK)
	e.encoding = "gzip"
	_, h := mergedServer(t, e)
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + eventsQuery("", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "Content-Encoding") {
		t.Errorf("gzip stream: %d %s", res.StatusCode, body)
	}
}

// Who serves GET /events in front of an engine, by filters.
func TestEventsSourceFor(t *testing.T) {
	for raw, want := range map[string]eventsSource{
		``:                                    eventsMerged,
		`{}`:                                  eventsMerged,
		`{"type":["plugin"]}`:                 eventsFromPluginsd,
		`{"type":{"plugin":true}}`:            eventsFromPluginsd,
		`{"plugin":["vol"]}`:                  eventsFromPluginsd,
		`{"type":["plugin"],"label":["a=b"]}`: eventsFromPluginsd, // pluginsd refuses the label key itself
		`{"type":["plugin","container"]}`:     eventsMerged,
		`{"event":["start"]}`:                 eventsMerged,
		`{"scope":["local"]}`:                 eventsMerged,
		`{"type":["container"]}`:              eventsFromEngine,
		`{"container":["c0ffee"]}`:            eventsFromEngine,
		`{"type":["plugin","container"],"label":["a=b"]}`: eventsFromEngine,
		`{"type":{"plugin":false}}`:                       eventsMerged, // no value set: no type filter
		`not json`:                                        eventsFromEngine,
	} {
		if got := eventsSourceFor(raw); got != want {
			t.Errorf("eventsSourceFor(%s) = %d, want %d", raw, got, want)
		}
	}
}
