package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/pluginsd/pluginsd/compat"
)

// What pluginsd changes in the engine's answers to /_ping, /version and
// /info, so that clients negotiate an API version both serve and see the
// plugins pluginsd runs.

// CombineAPIVersion is the Api-Version to announce in front of an engine
// announcing engine: the lower of the two maxima; "" if the engine
// announces nothing (pluginsd's own then stands).
func CombineAPIVersion(engine string) string {
	if engine == "" {
		return ""
	}
	if compat.LessThan(compat.MaxAPIVersion, engine) {
		return compat.MaxAPIVersion
	}
	return engine
}

// CombineMinAPIVersion is the higher of the two minima ("" if the engine
// gives none: pluginsd's then).
func CombineMinAPIVersion(engine string) string {
	if engine == "" || compat.LessThan(engine, compat.MinAPIVersion) {
		return compat.MinAPIVersion
	}
	return engine
}

// VersionBody rewrites the engine's GET /version answer: ApiVersion and
// MinAPIVersion become the range both serve, and component (pluginsd) is
// appended to Components. Every other field is kept as the engine sent it,
// in its order.
func VersionBody(engine []byte, component any) ([]byte, error) {
	obj, err := parseObject(engine)
	if err != nil {
		return nil, fmt.Errorf("engine's /version: %w", err)
	}
	var maxV, minV string
	_ = json.Unmarshal(obj.get("ApiVersion"), &maxV)
	_ = json.Unmarshal(obj.get("MinAPIVersion"), &minV)
	if v := CombineAPIVersion(maxV); v != "" {
		obj.set("ApiVersion", v)
	}
	obj.set("MinAPIVersion", CombineMinAPIVersion(minV))
	var comps []json.RawMessage
	if raw := obj.get("Components"); raw != nil {
		if err := json.Unmarshal(raw, &comps); err != nil {
			return nil, fmt.Errorf("engine's /version Components: %w", err)
		}
	}
	c, err := json.Marshal(component)
	if err != nil {
		return nil, err
	}
	obj.set("Components", append(comps, json.RawMessage(c)))
	return obj.marshal()
}

// InfoBody adds plugin names to the lists of the engine's GET /info
// Plugins object (Volume, Network, Authorization, Log), as dockerd lists
// its enabled managed plugins next to its built-in drivers. Names already
// listed are not repeated; the engine's order comes first.
func InfoBody(engine []byte, plugins map[string][]string) ([]byte, error) {
	obj, err := parseObject(engine)
	if err != nil {
		return nil, fmt.Errorf("engine's /info: %w", err)
	}
	pl := &object{}
	if raw := obj.get("Plugins"); raw != nil && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if pl, err = parseObject(raw); err != nil {
			return nil, fmt.Errorf("engine's /info Plugins: %w", err)
		}
	}
	for _, kind := range []string{"Volume", "Network", "Authorization", "Log"} {
		add := plugins[kind]
		if len(add) == 0 {
			continue
		}
		var list []string
		if raw := pl.get(kind); raw != nil {
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, fmt.Errorf("engine's /info Plugins.%s: %w", kind, err)
			}
		}
		for _, name := range add {
			if !slices.Contains(list, name) {
				list = append(list, name)
			}
		}
		pl.set(kind, list)
	}
	b, err := pl.marshal()
	if err != nil {
		return nil, err
	}
	obj.set("Plugins", json.RawMessage(bytes.TrimSpace(b)))
	return obj.marshal()
}

// object is a JSON object that keeps its keys' order.
type object struct {
	keys   []string
	values map[string]json.RawMessage
}

func parseObject(b []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	o := &object{values: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, ok := tok.(string)
		if !ok {
			return nil, errors.New("invalid JSON object key")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := o.values[k]; !dup {
			o.keys = append(o.keys, k)
		}
		o.values[k] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	return o, nil
}

func (o *object) get(k string) json.RawMessage {
	if o.values == nil {
		return nil
	}
	return o.values[k]
}

// set replaces k's value (keeping its place) or appends it.
func (o *object) set(k string, v any) {
	raw, ok := v.(json.RawMessage)
	if !ok {
		b, err := json.Marshal(v)
		if err != nil {
			return // only strings and string lists are set: cannot fail
		}
		raw = b
	}
	if o.values == nil {
		o.values = map[string]json.RawMessage{}
	}
	if _, ok := o.values[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.values[k] = raw
}

// marshal writes the object as the engine would: keys in order, no HTML
// escaping of what we add, a trailing newline.
func (o *object) marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(bytes.TrimSpace(o.values[k]))
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}
