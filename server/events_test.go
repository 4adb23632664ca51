package server

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pluginsd/pluginsd/handlers"
	"github.com/pluginsd/pluginsd/manager"
)

const evID = "c0215749a1c32e12b9283dbd0fc18814ffce7635f2ebcdbb671e0198b9231a23"

// evAt is the time of the n-th test event.
func evAt(n int) time.Time { return time.Unix(1700000000+int64(n), 123456789) }

// unixArg is t as the CLI sends since/until.
func unixArg(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

// wireEvent is the line dockerd writes for a plugin event.
func wireEvent(action, id, name string, at time.Time) string {
	return fmt.Sprintf(`{"Type":"plugin","Action":"%s","Actor":{"ID":"%s","Attributes":{"name":"%s"}},"scope":"local","time":%d,"timeNano":%d}`,
		action, id, name, at.Unix(), at.UnixNano())
}

// eventsServer is a server with an event bus holding a create, an enable
// and a remove at evAt(1..3).
func eventsServer(t *testing.T) (*manager.EventBus, http.Handler) {
	t.Helper()
	bus := manager.NewEventBus(manager.EventBusConfig{})
	bus.Publish(manager.Event{Action: "create", ID: evID, Name: "vol:latest", Time: evAt(1)})
	bus.Publish(manager.Event{Action: "enable", ID: evID, Name: "vol", Time: evAt(2)})
	bus.Publish(manager.Event{Action: "remove", ID: evID, Name: "c02157", Time: evAt(3)})
	s := New(Config{Info: handlers.Info{Version: "0.0.0-test"}, Events: bus}, &fakeBackend{})
	t.Cleanup(bus.Close)
	return bus, s.Handler()
}

func eventsQuery(since, until, filters string) string {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if until != "" {
		q.Set("until", until)
	}
	if filters != "" {
		q.Set("filters", filters)
	}
	return "/v1.41/events?" + q.Encode()
}

// Until in the past: the kept events in range, then the response ends.
func TestEventsPast(t *testing.T) {
	_, h := eventsServer(t)
	for _, tc := range []struct {
		name                 string
		since, until, filter string
		want                 []string
	}{
		{"all", unixArg(evAt(0)), unixArg(evAt(9)), "", []string{
			wireEvent("create", evID, "vol:latest", evAt(1)),
			wireEvent("enable", evID, "vol", evAt(2)),
			wireEvent("remove", evID, "c02157", evAt(3)),
		}},
		{"until only", "", unixArg(evAt(1)), "", []string{wireEvent("create", evID, "vol:latest", evAt(1))}},
		{"bounds are inclusive, to the nanosecond", unixArg(evAt(2)), unixArg(evAt(2)), "", []string{wireEvent("enable", evID, "vol", evAt(2))}},
		{"RFC 3339", evAt(2).UTC().Format(time.RFC3339Nano), evAt(3).Format(time.RFC3339Nano), "", []string{
			wireEvent("enable", evID, "vol", evAt(2)),
			wireEvent("remove", evID, "c02157", evAt(3)),
		}},
		{"event filter", unixArg(evAt(0)), unixArg(evAt(9)), `{"event":{"remove":true,"create":true}}`, []string{
			wireEvent("create", evID, "vol:latest", evAt(1)),
			wireEvent("remove", evID, "c02157", evAt(3)),
		}},
		{"plugin filter by name", unixArg(evAt(0)), unixArg(evAt(9)), `{"type":{"plugin":true},"plugin":{"vol":true}}`, []string{
			wireEvent("create", evID, "vol:latest", evAt(1)),
			wireEvent("enable", evID, "vol", evAt(2)),
		}},
		{"plugin filter by ID, legacy encoding", unixArg(evAt(0)), unixArg(evAt(9)), `{"plugin":["c0215749a1"]}`, []string{
			wireEvent("create", evID, "vol:latest", evAt(1)),
			wireEvent("enable", evID, "vol", evAt(2)),
			wireEvent("remove", evID, "c02157", evAt(3)),
		}},
		{"other types match nothing", unixArg(evAt(0)), unixArg(evAt(9)), `{"type":{"container":true}}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, eventsQuery(tc.since, tc.until, tc.filter), nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req) // returns: until is past
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			checkEngineHeaders(t, rec, true)
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			want := ""
			for _, l := range tc.want {
				want += l + "\n"
			}
			if got := rec.Body.String(); got != want {
				t.Errorf("body\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestEventsBadRequests(t *testing.T) {
	_, h := eventsServer(t)
	for _, tc := range []struct {
		name, target, msg string
	}{
		{"bad since", eventsQuery("soon", "", ""), `invalid since value "soon": want Unix seconds (e.g. 1700000000.123456789) or an RFC 3339 time`},
		{"bad until", eventsQuery("", "1.x", ""), `invalid until value "1.x": want Unix seconds (e.g. 1700000000.123456789) or an RFC 3339 time`},
		{"since after until", eventsQuery("1700000010", "1700000000", ""), "`since` time (1700000010) cannot be after `until` time (1700000000)"},
		{"unknown filter", eventsQuery("", "", `{"container":{"x":true}}`), "invalid filter 'container'"},
		{"malformed filters", eventsQuery("", "", `{"type":`), "invalid filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, tc.target, nil))
			checkJSONError(t, rec, http.StatusBadRequest, tc.msg)
		})
	}
}

func TestEventsWithoutBus(t *testing.T) {
	rec := do(t, &fakeBackend{}, request{method: http.MethodGet, target: "/v1.41/events"})
	checkJSONError(t, rec, http.StatusNotImplemented, "events are not available")
	rec = do(t, &fakeBackend{}, request{method: http.MethodPost, target: "/v1.41/events"})
	checkJSONError(t, rec, http.StatusNotFound, "page not found")
}

// streamEvents starts GET target on a real server and returns its status,
// headers and lines; cancel ends the request.
func streamEvents(t *testing.T, h http.Handler, target string) (lines <-chan string, status int, header http.Header, cancel context.CancelFunc) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req) // closed by the cleanup below; headers come at once, before any event
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case ch <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	return ch, resp.StatusCode, resp.Header, cancel
}

func nextLine(t *testing.T, lines <-chan string) (string, bool) {
	t.Helper()
	select {
	case l, ok := <-lines:
		return l, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no event line within 10s")
		return "", false
	}
}

// waitSubscribers waits until the bus has n subscribers.
func waitSubscribers(t *testing.T, bus *manager.EventBus, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); bus.Subscribers() != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers, want %d", bus.Subscribers(), n)
		}
	}
}

// Without until, the stream replays since= and then follows new events
// that pass the filters, until the client leaves.
func TestEventsStream(t *testing.T) {
	bus, h := eventsServer(t)
	lines, status, header, cancel := streamEvents(t, h, eventsQuery(unixArg(evAt(2)), "", `{"type":{"plugin":true},"event":{"enable":true,"die":true}}`))
	if status != http.StatusOK || header.Get("Content-Type") != "application/json" {
		t.Fatalf("response %d %q", status, header.Get("Content-Type"))
	}
	if l, _ := nextLine(t, lines); l != wireEvent("enable", evID, "vol", evAt(2)) {
		t.Errorf("replayed %s", l)
	}
	waitSubscribers(t, bus, 1)
	now := time.Now()
	bus.Publish(manager.Event{Action: "disable", ID: evID, Name: "vol", Time: now})
	bus.Publish(manager.Event{Action: "die", ID: evID, Name: "vol:latest", Time: now, Attributes: map[string]string{"exitCode": "2"}})
	want := fmt.Sprintf(`{"Type":"plugin","Action":"die","Actor":{"ID":"%s","Attributes":{"exitCode":"2","name":"vol:latest"}},"scope":"local","time":%d,"timeNano":%d}`,
		evID, now.Unix(), now.UnixNano())
	if l, _ := nextLine(t, lines); l != want {
		t.Errorf("live\n got %s\nwant %s", l, want)
	}
	cancel()
	waitSubscribers(t, bus, 0) // the handler ended and unsubscribed
}

// An until in the future streams until then.
func TestEventsUntilFuture(t *testing.T) {
	bus, h := eventsServer(t)
	until := time.Now().Add(500 * time.Millisecond)
	lines, _, _, _ := streamEvents(t, h, eventsQuery(unixArg(time.Now()), unixArg(until), "")) // since: no replay
	waitSubscribers(t, bus, 1)
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

// Closing the bus (shutdown) ends open streams.
func TestEventsBusClosed(t *testing.T) {
	bus, h := eventsServer(t)
	lines, _, _, _ := streamEvents(t, h, eventsQuery("", "", ""))
	waitSubscribers(t, bus, 1)
	bus.Close()
	if l, ok := nextLine(t, lines); ok {
		t.Errorf("line after Close: %s", l)
	}
}

// A since in the future replays nothing but does not hold back what
// happens now: dockerd streams live events whatever since says.
func TestEventsSinceFutureStreamsLive(t *testing.T) {
	bus, h := eventsServer(t)
	lines, _, _, _ := streamEvents(t, h, eventsQuery(unixArg(time.Now().Add(time.Hour)), "", ""))
	waitSubscribers(t, bus, 1)
	bus.Publish(manager.Event{Action: "disable", ID: evID, Name: "vol"})
	if l, _ := nextLine(t, lines); !strings.Contains(l, `"Action":"disable"`) {
		t.Errorf("first line %s, want the live disable (and no replay)", l)
	}
}
