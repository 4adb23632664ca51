package pluginstore

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// NotFound is the unknown-plugin error in dockerd's words, quoting the input
// as the client gave it.
func NotFound(input string) error {
	return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("plugin %q not found", input))
}

// NormalizeName parses a local plugin name and returns its stored form: the
// familiar reference with ":latest" added when no tag is given
// ("docker.io/library/foo" -> "foo:latest"). Digests are refused.
func NormalizeName(name string) (string, error) {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	if _, ok := ref.(reference.Digested); ok {
		return "", errdefs.ErrInvalidArgument.WithMessage("cannot use digest in plugin tag")
	}
	return reference.FamiliarString(reference.TagNameOnly(ref)), nil
}

// Resolve finds the plugin a client means by input, in dockerd's order:
//  1. a full 64-hex ID;
//  2. a name in any spelling that normalises to a stored name ("foo",
//     "foo:latest", "docker.io/library/foo:latest");
//  3. a unique prefix of an ID.
//
// Unknown -> 404 `plugin "<input>" not found`; a prefix of several IDs -> 400
// `multiple plugins found for "<input>"`. Where dockerd answers 404 for input
// that can be no name at all (uppercase, a digest reference), pluginsd says
// why with a 400.
func (s *Snapshot) Resolve(input string) (*Record, error) {
	if r, ok := s.resolved.Load(input); ok {
		return r.(*Record), nil
	}
	r, err := s.resolve(input)
	if err == nil && s.nResolved.Add(1) <= maxResolved {
		s.resolved.Store(input, r)
	}
	return r, err
}

func (s *Snapshot) resolve(input string) (*Record, error) {
	if IsID(input) {
		if r, ok := s.byID[input]; ok {
			return r, nil
		}
		return nil, NotFound(input)
	}
	ref, parseErr := reference.ParseNormalizedNamed(input)
	if parseErr == nil {
		if _, ok := ref.(reference.Digested); ok {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid plugin name %q: plugins are not addressed by digest", input))
		}
		if r, ok := s.byName[reference.FamiliarString(reference.TagNameOnly(ref))]; ok {
			return r, nil
		}
	}
	if input != "" && isLowerHex(input) {
		var found *Record
		for _, r := range s.sorted {
			if len(r.Plugin.ID) >= len(input) && r.Plugin.ID[:len(input)] == input {
				if found != nil {
					return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("multiple plugins found for %q", input))
				}
				found = r
			}
		}
		if found != nil {
			return found, nil
		}
	}
	if parseErr != nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid plugin name %q: %v", input, parseErr))
	}
	return nil, NotFound(input)
}
