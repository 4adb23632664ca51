package handlers

import (
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"

	"github.com/pluginsd/pluginsd/compat"
	"github.com/pluginsd/pluginsd/manager"
)

func TestEventTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: ""},
		{in: "1700000000", want: time.Unix(1700000000, 0)},
		{in: "1700000000.5", want: time.Unix(1700000000, 500_000_000)},
		{in: "1700000000.123456789", want: time.Unix(1700000000, 123456789)},
		{in: "1700000000.000000001", want: time.Unix(1700000000, 1)},
		{in: "1700000000.1234567899", want: time.Unix(1700000000, 123456789)}, // past nanoseconds: dropped
		{in: "0", want: time.Unix(0, 0)},
		{in: "2023-11-14T22:13:20Z", want: time.Unix(1700000000, 0)},
		{in: "2023-11-14T23:13:20.25+01:00", want: time.Unix(1700000000, 250_000_000)},
		{in: "1700000000.", bad: true},
		{in: "1700000000.-5", bad: true},
		{in: "1.2.3", bad: true},
		{in: "yesterday", bad: true},
		{in: "10m", bad: true}, // the CLI turns durations into times; the API does not
	} {
		got, err := eventTime("since", tc.in)
		if tc.bad {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("eventTime(%q) = %v, %v; want an invalid-argument error", tc.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("eventTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestEventMatcher(t *testing.T) {
	const id = "c0215749a1c32e12b9283dbd0fc18814ffce7635f2ebcdbb671e0198b9231a23"
	enable := manager.Event{Action: "enable", ID: id, Name: "vol"}
	pull := manager.Event{Action: "pull", ID: "localhost:5000/sample:1.0", Name: "spec-a:latest"}
	for _, tc := range []struct {
		name    string
		filters string
		want    []bool // enable, pull
	}{
		{"none", ``, []bool{true, true}},
		{"type plugin", `{"type":{"plugin":true}}`, []bool{true, true}},
		{"type container", `{"type":{"container":true}}`, []bool{false, false}},
		{"type container or plugin", `{"type":["container","plugin"]}`, []bool{true, true}},
		{"event", `{"event":{"enable":true}}`, []bool{true, false}},
		{"event is exact", `{"event":{"enab":true}}`, []bool{false, false}},
		{"plugin by name prefix", `{"plugin":{"vo":true}}`, []bool{true, false}},
		{"plugin by ID prefix", `{"plugin":{"c0215749":true}}`, []bool{true, false}},
		{"plugin by full ID", `{"plugin":{"` + id + `":true}}`, []bool{true, false}},
		{"plugin by remote", `{"plugin":{"localhost:5000/sample":true}}`, []bool{false, true}},
		{"plugin other", `{"plugin":{"zzz":true}}`, []bool{false, false}},
		{"scope", `{"scope":{"local":true}}`, []bool{true, true}},
		{"scope swarm", `{"scope":{"swarm":true}}`, []bool{false, false}},
		{"all of them", `{"type":{"plugin":true},"event":{"pull":true,"enable":true},"plugin":{"spec-a":true}}`, []bool{false, true}},
		{"empty value set", `{"event":{}}`, []bool{true, true}},
		{"value mapped to false", `{"event":{"enable":false}}`, []bool{false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := compat.ParseFilters(tc.filters)
			if err != nil {
				t.Fatal(err)
			}
			m := eventMatcher(f)
			var got []bool
			for _, ev := range []manager.Event{enable, pull} {
				got = append(got, m == nil || m(ev))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("matches [enable pull] (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventMessage(t *testing.T) {
	ts := time.Unix(1796311975, 673265820)
	got, err := compat.EncodeJSON(eventMessage(manager.Event{
		Action: "die", ID: "abc", Name: "vol:latest", Attributes: map[string]string{"exitCode": "3"}, Time: ts,
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Type":"plugin","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"3","name":"vol:latest"}},` +
		`"scope":"local","time":1796311975,"timeNano":1796311975673265820}` + "\n"
	if string(got) != want {
		t.Errorf("wire event\n got %s\nwant %s", got, want)
	}
}

func TestOperation(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/_ping", "ping"},
		{"HEAD", "/_ping", "ping"},
		{"GET", "/version", "version"},
		{"GET", "/info", "info"},
		{"GET", "/events", "events"},
		{"GET", "/plugins", "list"},
		{"GET", "/plugins/localhost:5000/x:1.0/json", "inspect"},
		{"GET", "/plugins/privileges", "privileges"},
		{"GET", "/plugins/privileges/json", "inspect"},
		{"DELETE", "/plugins/x", "remove"},
		{"POST", "/plugins/x/enable", "enable"},
		{"POST", "/plugins/x/disable", "disable"},
		{"POST", "/plugins/pull", "pull"},
		{"POST", "/plugins/x/push", "push"},
		{"POST", "/plugins/x/upgrade", "upgrade"},
		{"POST", "/plugins/x/set", "set"},
		{"POST", "/plugins/create", "create"},
		{"GET", "/plugins/json", ""},
		{"GET", "/plugins/", ""},
		{"PUT", "/plugins", ""},
		{"POST", "/_ping", ""},
		{"GET", "/containers/json", ""},
		{"GET", "/v1.41/plugins", ""}, // the caller strips the version
	} {
		if got := Operation(tc.method, tc.path); got != tc.want {
			t.Errorf("Operation(%s %s) = %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}
