// Package protoshape checks that a protobuf message populates only the fields
// its consumer implements. The waypoint engine compiles a subset of Envoy's
// xDS API; an allow-list per message type makes every other populated field,
// every unknown wire field and every extension an error naming the field's
// path (e.g. "unsupported field route.hash_policy"), so fields added to
// Envoy's API later are rejected rather than silently ignored (fail closed).
package protoshape

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ErrUnsupported is wrapped by every error of this package: the message sets
// a field, unknown field or extension the allow-list does not name, or nests
// deeper than MaxDepth. The error text is "unsupported field <path>".
var ErrUnsupported = errors.New("unsupported field")

// MaxDepth bounds how many messages deep Check descends (a message built in
// Go may even be cyclic); deeper nesting is rejected with ErrUnsupported
// rather than exhausting the stack.
const MaxDepth = 512

// Fields names, per message type (full name, e.g.
// "envoy.config.route.v3.Route"), the fields (proto names, e.g. "match") a
// consumer implements.
type Fields map[protoreflect.FullName][]protoreflect.Name

// AllowList is the implemented subset of a protobuf API. A populated field
// not listed in Fields, a populated message of a type absent from Fields,
// unknown wire fields and extensions all make Check fail. Message types in
// Opaque are accepted without descending into them: their content is checked
// by the caller on its own (google.protobuf.Any payloads, or messages whose
// errors should name their own context, such as a route). The zero value
// accepts only empty messages. Safe for concurrent use once built.
type AllowList struct {
	Fields Fields
	Opaque map[protoreflect.FullName]bool
}

// Check walks every populated field of m, depth first in declaration order,
// and returns an error wrapping ErrUnsupported that names the first field
// not allowed. m itself is checked even when its type is opaque. path
// prefixes the field path in the error ("" at the top: "route.hash_policy";
// "typed_config": "typed_config.log_format"); list elements are named
// "[i]" and map values "[\"key\"]". A nil m is accepted.
func (a *AllowList) Check(m proto.Message, path string) error {
	if m == nil {
		return nil
	}
	return a.message(m.ProtoReflect(), path, 0)
}

// Only checks a single message level: it returns an error wrapping
// ErrUnsupported naming the first populated field of m (in declaration
// order) not in names, or reporting unknown wire fields or extensions. It
// does not descend into nested messages. path prefixes the field names as in
// AllowList.Check. A nil m is accepted.
func Only(m proto.Message, path string, names ...protoreflect.Name) error {
	if m == nil {
		return nil
	}
	return populated(m.ProtoReflect(), path, func(fd protoreflect.FieldDescriptor, _ protoreflect.Value, p string) error {
		if !slices.Contains(names, fd.Name()) {
			return fmt.Errorf("%w %s", ErrUnsupported, p)
		}
		return nil
	})
}

// message checks one message against the allow-list and descends.
func (a *AllowList) message(m protoreflect.Message, path string, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("%w %s (nested deeper than %d messages)", ErrUnsupported, orTop(path), MaxDepth)
	}
	names, known := a.Fields[m.Descriptor().FullName()]
	return populated(m, path, func(fd protoreflect.FieldDescriptor, v protoreflect.Value, p string) error {
		if !known || !slices.Contains(names, fd.Name()) {
			return fmt.Errorf("%w %s", ErrUnsupported, p)
		}
		return a.value(fd, v, p, depth)
	})
}

// nested checks a nested message unless its type is opaque.
func (a *AllowList) nested(m protoreflect.Message, path string, depth int) error {
	if !m.IsValid() || a.Opaque[m.Descriptor().FullName()] {
		return nil
	}
	return a.message(m, path, depth+1)
}

// value descends into the messages held by one populated field.
func (a *AllowList) value(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string, depth int) error {
	switch {
	case fd.IsMap():
		if fd.MapValue().Message() == nil {
			return nil
		}
		keys := make([]protoreflect.MapKey, 0, v.Map().Len())
		v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		slices.SortFunc(keys, compareKeys)
		for _, k := range keys {
			p := path + "[" + strconv.Quote(k.String()) + "]"
			if err := a.nested(v.Map().Get(k).Message(), p, depth); err != nil {
				return err
			}
		}
		return nil
	case fd.IsList():
		if fd.Message() == nil {
			return nil
		}
		l := v.List()
		for i := range l.Len() {
			if err := a.nested(l.Get(i).Message(), path+"["+strconv.Itoa(i)+"]", depth); err != nil {
				return err
			}
		}
		return nil
	case fd.Message() != nil:
		return a.nested(v.Message(), path, depth)
	}
	return nil
}

// populated calls f for each populated field of m in declaration order, then
// rejects extensions and unknown wire fields. It stops at the first error.
func populated(m protoreflect.Message, path string, f func(protoreflect.FieldDescriptor, protoreflect.Value, string) error) error {
	if !m.IsValid() {
		return nil
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		if err := f(fd, m.Get(fd), join(path, string(fd.Name()))); err != nil {
			return err
		}
	}
	var ext error
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.IsExtension() {
			ext = fmt.Errorf("%w %s (extension)", ErrUnsupported, join(path, "["+string(fd.FullName())+"]"))
			return false
		}
		return true
	})
	if ext != nil {
		return ext
	}
	if raw := m.GetUnknown(); len(raw) > 0 {
		num, _, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return fmt.Errorf("%w %s (malformed unknown fields of %s)", ErrUnsupported, orTop(path), m.Descriptor().FullName())
		}
		return fmt.Errorf("%w %s (unknown field number %d of %s)", ErrUnsupported, orTop(path), num, m.Descriptor().FullName())
	}
	return nil
}

// compareKeys orders map keys so errors name the same key on every run.
func compareKeys(x, y protoreflect.MapKey) int {
	switch xv := x.Interface().(type) {
	case string:
		return cmp.Compare(xv, y.String())
	case bool:
		return cmp.Compare(strconv.FormatBool(xv), strconv.FormatBool(y.Bool()))
	case int32, int64:
		return cmp.Compare(x.Int(), y.Int())
	default:
		return cmp.Compare(x.Uint(), y.Uint())
	}
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func orTop(path string) string {
	if path == "" {
		return "(message)"
	}
	return path
}
