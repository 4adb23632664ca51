package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"
	"github.com/moby/moby/api/types/events"
	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/compat"
	"github.com/pluginsd/pluginsd/manager"
)

// EventSource is what GET /events reads: *manager.EventBus.
type EventSource interface {
	// Subscribe returns the kept events q selects and a feed of the
	// matching events published from now on; see manager.EventBus.
	Subscribe(ctx context.Context, q manager.EventQuery) ([]manager.Event, *manager.Subscription)
	// Subscribers is the number of live feeds (GET /info's NEventsListener).
	Subscribers() int
}

// WithEvents serves GET /events from src.
func WithEvents(src EventSource) Option {
	return func(a *API) { a.events = src }
}

// eventFilterKeys are the filters GET /events accepts. dockerd accepts
// more (container, image, volume, label...), but those select other event
// types or attributes plugin events do not have: pluginsd refuses them
// rather than answer with an empty stream.
var eventFilterKeys = []string{"event", "plugin", "scope", "type"}

// eventStream answers GET /events?since=&until=&filters=: the kept events
// between since and until, then (unless until is past) the new ones as
// they happen, until until, or until the client leaves. One JSON object
// and "\n" per event, each flushed, as dockerd writes them.
func (a *API) eventStream(c echo.Context) error {
	if a.events == nil {
		return errdefs.ErrNotImplemented.WithMessage("events are not available")
	}
	q, err := parseEventQuery(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	feed := a.openEventFeed(ctx, q)
	defer feed.close()

	resp := c.Response()
	// The stream lasts as long as the client wants: no write deadline.
	_ = http.NewResponseController(resp.Writer).SetWriteDeadline(time.Time{})
	resp.Header().Set("Content-Type", "application/json")
	resp.WriteHeader(http.StatusOK)
	// json.Encoder escapes HTML and ends each value with "\n", as dockerd's.
	enc := json.NewEncoder(resp)
	for _, ev := range feed.past {
		if err := enc.Encode(eventMessage(ev)); err != nil {
			return nil // the client went away; nothing more to say
		}
	}
	resp.Flush()
	if feed.onlyPast {
		return nil
	}
	for {
		select {
		case ev, ok := <-feed.sub.Events():
			if !ok {
				feed.logEnd()
				return nil
			}
			if sendEvent(enc, resp, ev) != nil {
				return nil // the client went away
			}
		case <-feed.deadline:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// sendEvent writes one live event and flushes it to the client.
func sendEvent(enc *json.Encoder, resp *echo.Response, ev manager.Event) error {
	if err := enc.Encode(eventMessage(ev)); err != nil {
		return err
	}
	resp.Flush()
	return nil
}

// eventQuery is a parsed GET /events request.
type eventQuery struct {
	since, until time.Time
	filters      compat.Filters
}

// parseEventQuery reads since, until and filters, refusing what dockerd
// refuses and filter keys pluginsd does not serve.
func parseEventQuery(c echo.Context) (eventQuery, error) {
	since, err := eventTime("since", c.QueryParam("since"))
	if err != nil {
		return eventQuery{}, err
	}
	until, err := eventTime("until", c.QueryParam("until"))
	if err != nil {
		return eventQuery{}, err
	}
	if !until.IsZero() && until.Before(since) {
		return eventQuery{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("`since` time (%s) cannot be after `until` time (%s)",
			c.QueryParam("since"), c.QueryParam("until")))
	}
	f, err := compat.ParseFilters(c.QueryParam("filters"))
	if err != nil {
		return eventQuery{}, err
	}
	if err := f.Validate(eventFilterKeys...); err != nil {
		return eventQuery{}, err
	}
	return eventQuery{since: since, until: until, filters: f}, nil
}

// eventFeed is pluginsd's side of one events stream: the kept events that
// match, the subscription for new ones, and when to stop.
type eventFeed struct {
	past     []manager.Event
	sub      *manager.Subscription
	deadline <-chan time.Time // fires at until; nil without one
	onlyPast bool             // until has passed: the past is all there is
	timer    *time.Timer
}

func (a *API) openEventFeed(ctx context.Context, q eventQuery) *eventFeed {
	f := &eventFeed{}
	if !q.until.IsZero() {
		if d := time.Until(q.until); d > 0 {
			f.timer = time.NewTimer(d)
			f.deadline = f.timer.C
		} else {
			f.onlyPast = true
		}
	}
	f.past, f.sub = a.events.Subscribe(ctx, manager.EventQuery{Since: q.since, Until: q.until, Match: eventMatcher(q.filters)})
	return f
}

func (f *eventFeed) close() {
	f.sub.Close()
	if f.timer != nil {
		f.timer.Stop()
	}
}

// logEnd records why the subscription ended, when it is worth a warning:
// dropped as too slow (shutting down is not). Ending the stream tells the
// client; it may reconnect with since=.
func (f *eventFeed) logEnd() {
	if err := f.sub.Err(); errors.Is(err, manager.ErrSlowSubscriber) {
		logrus.WithError(err).Warn("ending an events stream")
	}
}

// eventTime parses since/until: Unix seconds with an optional fraction of
// up to nanoseconds ("1700000000", "1700000000.123456789"), as the CLI
// sends and dockerd parses, or an RFC 3339 time (an extension: dockerd
// answers 500 to those). Empty is the zero time.
func eventTime(param, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, ok := unixTime(v); ok {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(
		"invalid %s value %q: want Unix seconds (e.g. 1700000000.123456789) or an RFC 3339 time", param, v))
}

// unixTime parses "SECONDS[.FRACTION]". Fraction digits past nanoseconds
// are dropped.
func unixTime(v string) (time.Time, bool) {
	secs, frac, hasFrac := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	if !hasFrac {
		return time.Unix(sec, 0), true
	}
	if frac == "" || strings.Trim(frac, "0123456789") != "" {
		return time.Time{}, false
	}
	frac = (frac + "000000000")[:9]
	nsec, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, nsec), true
}

// eventMatcher applies dockerd's event filters to plugin events: type
// (only "plugin" matches), event (the action, exactly), plugin (a prefix
// of the actor ID or of the name attribute) and scope ("local"). A key
// given with no value does not filter.
func eventMatcher(f compat.Filters) func(manager.Event) bool {
	if len(f) == 0 {
		return nil
	}
	return func(ev manager.Event) bool {
		return allows(f, "type", func(v string) bool { return v == string(events.PluginEventType) }) &&
			allows(f, "event", func(v string) bool { return v == ev.Action }) &&
			allows(f, "plugin", func(v string) bool { return strings.HasPrefix(ev.ID, v) || strings.HasPrefix(ev.Name, v) }) &&
			allows(f, "scope", func(v string) bool { return v == "local" })
	}
}

// allows reports whether filter key lets an event through: it does when
// the key is absent or empty, or when ok accepts one of its values.
func allows(f compat.Filters, key string, ok func(v string) bool) bool {
	set := f[key]
	if len(set) == 0 {
		return true
	}
	for v, on := range set {
		if on && ok(v) {
			return true
		}
	}
	return false
}

// eventMessage is ev on the wire: a plugin event with the name (and any
// other attributes) on the actor, and no legacy status/id/from fields.
func eventMessage(ev manager.Event) events.Message {
	attrs := make(map[string]string, len(ev.Attributes)+1)
	maps.Copy(attrs, ev.Attributes)
	attrs["name"] = ev.Name
	return events.Message{
		Type:     events.PluginEventType,
		Action:   events.Action(ev.Action),
		Actor:    events.Actor{ID: ev.ID, Attributes: attrs},
		Scope:    "local",
		Time:     ev.Time.Unix(),
		TimeNano: ev.Time.UnixNano(),
	}
}
