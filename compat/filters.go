package compat

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
)

// Filters is the decoded `filters` query parameter: key -> set of values.
type Filters map[string]map[string]bool

// filterError is a bad `filters` parameter (400).
type filterError string

func (e filterError) Error() string { return string(e) }
func (e filterError) Unwrap() error { return errdefs.ErrInvalidArgument }

// maxFiltersLen bounds the JSON we are willing to decode from a query string.
const maxFiltersLen = 64 << 10

// ParseFilters decodes the `filters` query value in both encodings clients
// send: the current map of bools {"k":{"v":true}} and the legacy map of lists
// {"k":["v"]}. "", "{}" and "null" mean no filter. Malformed input is a 400
// "invalid filter" (dockerd 20.10 answered 500 with the raw JSON error).
//
// Like moby's filters.Args, a value mapped to false is kept as present in the
// set but false; see Bool.
func ParseFilters(raw string) (Filters, error) {
	if raw == "" {
		return Filters{}, nil
	}
	if len(raw) > maxFiltersLen {
		return nil, filterError("invalid filter: too long")
	}
	var bools map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &bools); err == nil {
		f := Filters{}
		for k, vs := range bools {
			f[k] = maps.Clone(vs)
			if f[k] == nil {
				f[k] = map[string]bool{}
			}
		}
		return f, nil
	}
	var lists map[string][]string
	if err := json.Unmarshal([]byte(raw), &lists); err != nil {
		return nil, filterError("invalid filter")
	}
	f := Filters{}
	for k, vs := range lists {
		set := map[string]bool{}
		for _, v := range vs {
			set[v] = true
		}
		f[k] = set
	}
	return f, nil
}

// Validate refuses keys outside accepted with dockerd's v28 wording
// "invalid filter 'k'".
func (f Filters) Validate(accepted ...string) error {
	for _, k := range slices.Sorted(maps.Keys(f)) {
		if !slices.Contains(accepted, k) {
			return filterError(fmt.Sprintf("invalid filter '%s'", k))
		}
	}
	return nil
}

// Values returns the values of key whose set entry is true, sorted.
func (f Filters) Values(key string) []string {
	var out []string
	for v, on := range f[key] {
		if on {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// Bool interprets key as a boolean filter the way v28+ dockerd does
// (GetBoolOrDefault): absent -> (def, nil); "1"/"true" and "0"/"false"
// accepted case-insensitively; an empty set, an unknown value or both true
// and false -> 400 "invalid filter 'key=[...]'".
func (f Filters) Bool(key string, def bool) (bool, error) {
	set, ok := f[key]
	if !ok {
		return def, nil
	}
	if len(set) == 0 {
		return false, filterError(fmt.Sprintf("invalid filter '%s'", key))
	}
	vals := slices.Sorted(maps.Keys(set))
	var sawTrue, sawFalse bool
	for _, v := range vals {
		if !set[v] {
			// A value explicitly mapped to false is not a usable value.
			return false, filterError(fmt.Sprintf("invalid filter '%s=[%s]'", key, strings.Join(vals, " ")))
		}
		switch strings.ToLower(v) {
		case "1", "true":
			sawTrue = true
		case "0", "false":
			sawFalse = true
		default:
			return false, filterError(fmt.Sprintf("invalid filter '%s=[%s]'", key, strings.Join(vals, " ")))
		}
	}
	if sawTrue && sawFalse {
		return false, filterError(fmt.Sprintf("invalid filter '%s=[%s]'", key, strings.Join(vals, " ")))
	}
	return sawTrue, nil
}
