package manager

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// at is a fixed time plus n seconds.
func at(n int) time.Time {
	return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(n) * time.Second)
}

func ev(action string, n int) Event {
	return Event{Action: action, ID: fmt.Sprintf("id%d", n), Name: fmt.Sprintf("p%d", n), Time: at(n)}
}

func actions(evs []Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Action+e.ID)
	}
	return out
}

// receive reads n events or fails after a while.
func receive(t *testing.T, s *Subscription, n int) []Event {
	t.Helper()
	var out []Event
	for len(out) < n {
		select {
		case e, ok := <-s.Events():
			if !ok {
				t.Fatalf("subscription ended after %d events: %v", len(out), s.Err())
			}
			out = append(out, e)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d events, want %d", len(out), n)
		}
	}
	return out
}

func TestEventBusLive(t *testing.T) {
	b := NewEventBus(EventBusConfig{})
	b.Publish(ev("create", 1)) // before: not replayed without since/until
	past, s := b.Subscribe(t.Context(), EventQuery{})
	defer s.Close()
	if len(past) != 0 {
		t.Errorf("past = %v, want none without since/until", actions(past))
	}
	if n := b.Subscribers(); n != 1 {
		t.Errorf("Subscribers = %d", n)
	}
	b.Publish(ev("enable", 2))
	b.Publish(Event{Action: "disable", ID: "id3", Attributes: map[string]string{"k": "v"}})
	got := receive(t, s, 2)
	if diff := cmp.Diff([]string{"enableid2", "disableid3"}, actions(got)); diff != "" {
		t.Errorf("live (-want +got):\n%s", diff)
	}
	if got[1].Time.IsZero() || time.Since(got[1].Time) > time.Minute {
		t.Errorf("zero Time not stamped: %v", got[1].Time)
	}
	s.Close()
	s.Close() // idempotent
	if _, ok := <-s.Events(); ok {
		t.Error("channel open after Close")
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after Close = %v", err)
	}
	if n := b.Subscribers(); n != 0 {
		t.Errorf("Subscribers after Close = %d", n)
	}
}

func TestEventBusAttributesCopied(t *testing.T) {
	b := NewEventBus(EventBusConfig{})
	attrs := map[string]string{"exitCode": "1"}
	b.Publish(Event{Action: "die", Attributes: attrs, Time: at(1)})
	attrs["exitCode"] = "2"
	past, s := b.Subscribe(t.Context(), EventQuery{Since: at(0)})
	s.Close()
	if got := past[0].Attributes["exitCode"]; got != "1" {
		t.Errorf("stored attribute changed with the caller's map: %q", got)
	}
}

func TestEventBusSinceUntil(t *testing.T) {
	b := NewEventBus(EventBusConfig{})
	for i := 1; i <= 5; i++ {
		b.Publish(ev("create", i))
	}
	for _, tc := range []struct {
		name string
		q    EventQuery
		want []string
	}{
		{"since", EventQuery{Since: at(3)}, []string{"createid3", "createid4", "createid5"}},
		{"until", EventQuery{Until: at(2)}, []string{"createid1", "createid2"}},
		{"both inclusive", EventQuery{Since: at(2), Until: at(4)}, []string{"createid2", "createid3", "createid4"}},
		{"since in the future", EventQuery{Since: at(9)}, []string{}},
		{"match", EventQuery{Since: at(0), Match: func(e Event) bool { return e.ID == "id4" }}, []string{"createid4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			past, s := b.Subscribe(t.Context(), tc.q)
			defer s.Close()
			if diff := cmp.Diff(tc.want, actions(past)); diff != "" {
				t.Errorf("past (-want +got):\n%s", diff)
			}
		})
	}
}

// Live events are held to the query's Match, not to its times: dockerd
// streams what happens now even with since= in the future (checked against
// dockerd 20.10 on 2026-12-04), and the handler ends the stream at until.
func TestEventBusLiveIgnoresTimes(t *testing.T) {
	b := NewEventBus(EventBusConfig{})
	_, s := b.Subscribe(t.Context(), EventQuery{Since: at(2), Until: at(4), Match: func(e Event) bool { return e.Action != "skip" }})
	defer s.Close()
	b.Publish(ev("create", 1))
	b.Publish(ev("skip", 3))
	b.Publish(ev("create", 3))
	b.Publish(ev("create", 5))
	b.Publish(ev("create", 4))
	got := receive(t, s, 4)
	if diff := cmp.Diff([]string{"createid1", "createid3", "createid5", "createid4"}, actions(got)); diff != "" {
		t.Errorf("live (-want +got):\n%s", diff)
	}
}

func TestEventBusHistoryBounded(t *testing.T) {
	b := NewEventBus(EventBusConfig{History: 3})
	for i := 1; i <= 7; i++ {
		b.Publish(ev("create", i))
		past, s := b.Subscribe(t.Context(), EventQuery{Since: at(0)})
		s.Close()
		var want []string
		for j := max(1, i-2); j <= i; j++ {
			want = append(want, fmt.Sprintf("createid%d", j))
		}
		if diff := cmp.Diff(want, actions(past)); diff != "" {
			t.Fatalf("after %d events, history (-want +got):\n%s", i, diff)
		}
	}
}

// Replay and live feed neither lose nor repeat an event published while
// subscribers come and go.
func TestEventBusNoGapNoDuplicate(t *testing.T) {
	b := NewEventBus(EventBusConfig{History: 10000, SubscriberBuffer: 10000})
	const n = 2000
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			b.Publish(Event{Action: "create", ID: fmt.Sprint(i), Time: at(0)})
		}
	})
	for range 20 {
		past, s := b.Subscribe(t.Context(), EventQuery{Since: at(0)})
		seen := map[string]bool{}
		for _, e := range past {
			seen[e.ID] = true
		}
		for len(seen) < n {
			e := receive(t, s, 1)[0]
			if seen[e.ID] {
				t.Fatalf("event %s twice", e.ID)
			}
			seen[e.ID] = true
		}
		s.Close()
	}
	wg.Wait()
}

// A subscriber that does not read is dropped once its buffer is full; the
// publisher never waits, and other subscribers keep everything.
func TestEventBusSlowSubscriberDropped(t *testing.T) {
	b := NewEventBus(EventBusConfig{SubscriberBuffer: 4})
	_, slow := b.Subscribe(t.Context(), EventQuery{})
	defer slow.Close()
	_, fast := b.Subscribe(t.Context(), EventQuery{})
	defer fast.Close()
	// One goroutine publishes and reads the fast feed: were Publish to
	// wait for the slow subscriber, this would never finish.
	for i := range 100 {
		b.Publish(ev("create", i))
		receive(t, fast, 1)
	}
	var buffered int
	for range slow.Events() { // drains the buffer, then sees the close
		buffered++
	}
	if buffered != 4 {
		t.Errorf("slow subscriber got %d events before the drop, want its buffer (4)", buffered)
	}
	if err := slow.Err(); !errors.Is(err, ErrSlowSubscriber) {
		t.Errorf("slow Err = %v", err)
	}
	if err := fast.Err(); err != nil {
		t.Errorf("fast Err = %v", err)
	}
	if n := b.Subscribers(); n != 1 {
		t.Errorf("Subscribers = %d, want the fast one", n)
	}
}

// The subscription ends with its context, and nothing is left running.
func TestEventBusContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewEventBus(EventBusConfig{})
		ctx, cancel := context.WithCancel(t.Context())
		_, s := b.Subscribe(ctx, EventQuery{})
		defer s.Close()
		cancel()
		synctest.Wait()
		if _, ok := <-s.Events(); ok {
			t.Fatal("channel open after the context ended")
		}
		if err := s.Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("Err = %v, want context.Canceled", err)
		}
		if n := b.Subscribers(); n != 0 {
			t.Errorf("Subscribers = %d", n)
		}
		// synctest.Test fails if a goroutine of the bubble is still blocked.
	})
}

// Closing a subscription stops its context callback: nothing runs when the
// context ends later.
func TestEventBusCloseBeforeContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewEventBus(EventBusConfig{})
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		_, s := b.Subscribe(ctx, EventQuery{})
		s.Close()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if err := s.Err(); err != nil {
			t.Errorf("Err = %v, want nil after Close", err)
		}
	})
}

func TestEventBusClose(t *testing.T) {
	b := NewEventBus(EventBusConfig{})
	b.Publish(ev("create", 1))
	_, s := b.Subscribe(t.Context(), EventQuery{})
	defer s.Close()
	b.Close()
	if _, ok := <-s.Events(); ok {
		t.Fatal("channel open after bus Close")
	}
	if err := s.Err(); !errors.Is(err, ErrEventBusClosed) {
		t.Errorf("Err = %v", err)
	}
	// Later subscribers get the history and an ended feed.
	past, s2 := b.Subscribe(t.Context(), EventQuery{Since: at(0)})
	defer s2.Close()
	if len(past) != 1 {
		t.Errorf("past after Close = %v", actions(past))
	}
	if _, ok := <-s2.Events(); ok || !errors.Is(s2.Err(), ErrEventBusClosed) {
		t.Errorf("subscription after Close: open=%v err=%v", ok, s2.Err())
	}
	b.Publish(ev("remove", 2)) // does not panic on closed channels
}

// The manager publishes its lifecycle events to the bus.
func TestEventBusFromManager(t *testing.T) {
	b := NewEventBus(EventBusConfig{})
	m, err := New(Config{DataRoot: t.TempDir(), Version: testVersion, Events: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeManager(t, m) })
	_, s := b.Subscribe(t.Context(), EventQuery{})
	defer s.Close()
	mustCreate(t, m, "evbus", goodContext(t, minimalConfig))
	if err := m.Remove(t.Context(), RemoveRequest{Name: "evbus"}); err != nil {
		t.Fatal(err)
	}
	got := receive(t, s, 2)
	if got[0].Action != "create" || got[0].Name != "evbus:latest" || got[1].Action != "remove" || got[1].Name != "evbus" || got[0].ID != got[1].ID {
		t.Errorf("events = %+v", got)
	}
}
