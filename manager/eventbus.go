package manager

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"
)

// Defaults of an EventBus.
const (
	// DefaultEventHistory is how many past events a bus keeps for `since`
	// replays (dockerd keeps 256).
	DefaultEventHistory = 1024
	// DefaultSubscriberBuffer is how many events a subscriber may be behind
	// before it is dropped.
	DefaultSubscriberBuffer = 256
)

// Why a subscription ended, from Subscription.Err.
var (
	// ErrSlowSubscriber: the subscriber fell DefaultSubscriberBuffer events
	// behind and was dropped, so that it could not hold up publishers.
	ErrSlowSubscriber = errors.New("event subscriber too slow: dropped")
	// ErrEventBusClosed: the bus was closed (shutdown).
	ErrEventBusClosed = errors.New("event bus closed")
)

// EventBus keeps the last events in memory and fans every published event
// out to its subscribers. It is the EventSink that GET /events reads.
//
// Publish never blocks. Each subscriber has a bounded buffer; one that
// falls that far behind is dropped (its channel is closed and Err says
// ErrSlowSubscriber) rather than skipped silently: a client that sees its
// stream end knows it may have missed events and can reconnect with
// since= the time of the last one it saw, which the history replays.
type EventBus struct {
	bufSize int

	mu     sync.Mutex // guards everything below; sends to subscribers happen under it
	ring   []Event    // the last len(ring) events; ring[next] is the oldest once full
	next   int        // where the next event goes in ring
	full   bool       // ring has wrapped
	subs   map[*Subscription]struct{}
	closed bool
}

// EventBusConfig sizes an EventBus; zero values take the defaults.
type EventBusConfig struct {
	History          int // past events kept
	SubscriberBuffer int // events a subscriber may be behind
}

// NewEventBus returns an empty bus.
func NewEventBus(cfg EventBusConfig) *EventBus {
	if cfg.History <= 0 {
		cfg.History = DefaultEventHistory
	}
	if cfg.SubscriberBuffer <= 0 {
		cfg.SubscriberBuffer = DefaultSubscriberBuffer
	}
	return &EventBus{
		bufSize: cfg.SubscriberBuffer,
		ring:    make([]Event, cfg.History),
		subs:    map[*Subscription]struct{}{},
	}
}

// EventQuery selects events. Zero values select everything.
type EventQuery struct {
	// Since and Until bound the Time of the kept events replayed, both
	// inclusive. They do not hold back live events, as in dockerd (checked
	// on the wire): a since= in the future still streams what happens now,
	// and the caller ends the stream at until.
	Since, Until time.Time
	// Match, when set, keeps the events it returns true for. It is called
	// with the bus locked: it must be quick and must not use the bus.
	Match func(Event) bool
}

// matches selects a kept event for a replay.
func (q EventQuery) matches(ev Event) bool {
	if !q.Since.IsZero() && ev.Time.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && ev.Time.After(q.Until) {
		return false
	}
	return q.live(ev)
}

// live selects a newly published event.
func (q EventQuery) live(ev Event) bool { return q.Match == nil || q.Match(ev) }

// Publish records ev and sends it to every subscriber it matches. ev.Time
// is set to now when zero; ev.Attributes is copied. Events are immutable
// from here on: subscribers share them and must not modify them.
func (b *EventBus) Publish(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Attributes = maps.Clone(ev.Attributes)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ring[b.next] = ev
	b.next++
	if b.next == len(b.ring) {
		b.next, b.full = 0, true
	}
	for s := range b.subs {
		if !s.q.live(ev) {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			b.endLocked(s, ErrSlowSubscriber)
		}
	}
}

// historyLocked returns the kept events, oldest first. The caller holds b.mu.
func (b *EventBus) historyLocked() []Event {
	if !b.full {
		return b.ring[:b.next]
	}
	return append(append(make([]Event, 0, len(b.ring)), b.ring[b.next:]...), b.ring[:b.next]...)
}

// Subscribe returns the kept events that q selects, oldest first, and a
// subscription to the matching events published from now on: none is
// missed or repeated between the two. Without Since and Until no past
// events are returned (as dockerd).
//
// The subscription ends, and its channel is closed, when ctx ends, at
// Close, when the bus closes, or when the subscriber falls behind; Err
// says which. Call Close when done, whatever happened.
func (b *EventBus) Subscribe(ctx context.Context, q EventQuery) ([]Event, *Subscription) {
	s := &Subscription{bus: b, q: q, ch: make(chan Event, b.bufSize)}
	b.mu.Lock()
	var past []Event
	if !q.Since.IsZero() || !q.Until.IsZero() {
		for _, ev := range b.historyLocked() {
			if q.matches(ev) {
				past = append(past, ev)
			}
		}
	}
	if b.closed {
		s.err = ErrEventBusClosed
		close(s.ch)
		b.mu.Unlock()
		return past, s
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	// The callback runs (in its own short-lived goroutine) only if ctx ends
	// before Close, which stops it.
	s.stopAfter = context.AfterFunc(ctx, func() { s.end(context.Cause(ctx)) })
	return past, s
}

// Subscribers is the number of live subscriptions.
func (b *EventBus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Close ends every subscription with ErrEventBusClosed, and those made
// later at once (they still get the history). Publish keeps recording.
func (b *EventBus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.endLocked(s, ErrEventBusClosed)
	}
}

// endLocked removes s and closes its channel, once. The caller holds b.mu.
func (b *EventBus) endLocked(s *Subscription, err error) {
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	s.err = err
	close(s.ch)
}

// Subscription is a live feed of events from an EventBus.
type Subscription struct {
	bus       *EventBus
	q         EventQuery
	ch        chan Event
	err       error       // why it ended; guarded by bus.mu
	stopAfter func() bool // stops the context callback; nil if never set
}

// Events delivers the events; it is closed when the subscription ends.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Err tells why the subscription ended: nil while it runs or after Close,
// the context's cause, ErrSlowSubscriber or ErrEventBusClosed.
func (s *Subscription) Err() error {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.err
}

// Close ends the subscription; it may be called more than once.
func (s *Subscription) Close() {
	if s.stopAfter != nil {
		s.stopAfter()
	}
	s.end(nil)
}

func (s *Subscription) end(err error) {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	s.bus.endLocked(s, err)
}
