package config

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// only returns an error naming the first populated field of m (in field-number order)
// that is not in allowed, or the presence of unknown fields. res names the resource
// (`cluster "x"`), path the message inside it ("circuit_breakers.thresholds[0]", empty
// for the resource itself).
func only(res, path string, m proto.Message, allowed ...string) error {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil
	}
	rm := m.ProtoReflect()
	var bad string
	rm.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			bad = string(fd.Name())
			return false
		}
		return true
	})
	if bad != "" {
		return fmt.Errorf("%s: unsupported field %s", res, dot(path, bad))
	}
	if len(rm.GetUnknown()) > 0 {
		return fmt.Errorf("%s: %s: unknown fields present", res, orRoot(path))
	}
	return nil
}

// dot joins a field path and a field name.
func dot(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// invalid formats a value error for a field of a resource.
func invalid(res, path, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", res, orRoot(path), fmt.Sprintf(format, args...))
}

// unpack decodes an Any into a new message of type T, requiring the exact type.
func unpack[T proto.Message](res, path string, a *anypb.Any, into T) (T, error) {
	if a == nil {
		return into, invalid(res, path, "typed_config missing")
	}
	if err := a.UnmarshalTo(into); err != nil {
		return into, invalid(res, path, "typed_config: %v", err)
	}
	return into, nil
}

// sameShape compares got with want field by field and returns an error naming the first
// path where they differ: a field populated only in got is "unsupported", one only in
// want is "missing", differing values are "got X, want Y". Any fields are compared by
// their decoded contents; scalar fields holding their default are treated as unset, so a
// generator that writes a oneof's zero value explicitly still matches.
func sameShape(where string, got, want proto.Message) error {
	if d := diffMsg("", got.ProtoReflect(), want.ProtoReflect()); d != "" {
		return fmt.Errorf("%s: %s", where, d)
	}
	return nil
}

func diffMsg(path string, got, want protoreflect.Message) string {
	if got.Descriptor().FullName() != want.Descriptor().FullName() {
		return fmt.Sprintf("%s: type %s, want %s", orRoot(path), got.Descriptor().FullName(), want.Descriptor().FullName())
	}
	if got.Descriptor().FullName() == "google.protobuf.Any" {
		return diffAny(path, got, want)
	}
	if len(got.GetUnknown()) > 0 {
		return fmt.Sprintf("%s: unknown fields present", orRoot(path))
	}
	fields := got.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		p := fd.TextName()
		if path != "" {
			p = path + "." + p
		}
		gs, ws := isSet(got, fd), isSet(want, fd)
		switch {
		case !gs && !ws:
			continue
		case gs && !ws:
			return "unsupported field " + p
		case !gs && ws:
			return "missing field " + p
		}
		if d := diffValue(p, fd, got.Get(fd), want.Get(fd)); d != "" {
			return d
		}
	}
	return ""
}

func isSet(m protoreflect.Message, fd protoreflect.FieldDescriptor) bool {
	if !m.Has(fd) {
		return false
	}
	if fd.IsList() || fd.IsMap() || fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return true
	}
	return !m.Get(fd).Equal(fd.Default())
}

func diffValue(p string, fd protoreflect.FieldDescriptor, g, w protoreflect.Value) string {
	switch {
	case fd.IsList():
		gl, wl := g.List(), w.List()
		if gl.Len() != wl.Len() {
			return fmt.Sprintf("%s: %d elements, want %d", p, gl.Len(), wl.Len())
		}
		for i := range gl.Len() {
			if d := diffSingle(fmt.Sprintf("%s[%d]", p, i), fd, gl.Get(i), wl.Get(i)); d != "" {
				return d
			}
		}
		return ""
	case fd.IsMap():
		gm, wm := g.Map(), w.Map()
		if gm.Len() != wm.Len() {
			return fmt.Sprintf("%s: %d entries, want %d", p, gm.Len(), wm.Len())
		}
		var d string
		gm.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			if !wm.Has(k) {
				d = fmt.Sprintf("%s[%v]: unexpected key", p, k.Interface())
				return false
			}
			d = diffSingle(fmt.Sprintf("%s[%v]", p, k.Interface()), fd.MapValue(), v, wm.Get(k))
			return d == ""
		})
		return d
	default:
		return diffSingle(p, fd, g, w)
	}
}

func diffSingle(p string, fd protoreflect.FieldDescriptor, g, w protoreflect.Value) string {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return diffMsg(p, g.Message(), w.Message())
	}
	if !g.Equal(w) {
		if fd.Kind() == protoreflect.EnumKind {
			return fmt.Sprintf("%s: got %s, want %s", p, enumName(fd, g), enumName(fd, w))
		}
		return fmt.Sprintf("%s: got %v, want %v", p, g.Interface(), w.Interface())
	}
	return ""
}

func enumName(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
		return string(ev.Name())
	}
	return fmt.Sprint(v.Enum())
}

func diffAny(path string, got, want protoreflect.Message) string {
	ga, _ := got.Interface().(*anypb.Any)
	wa, _ := want.Interface().(*anypb.Any)
	if ga == nil || wa == nil {
		return fmt.Sprintf("%s: not an Any", orRoot(path))
	}
	if ga.GetTypeUrl() != wa.GetTypeUrl() {
		return fmt.Sprintf("%s: type %s, want %s", orRoot(path), ga.GetTypeUrl(), wa.GetTypeUrl())
	}
	gm, err := ga.UnmarshalNew()
	if err != nil {
		return fmt.Sprintf("%s: decode: %v", orRoot(path), err)
	}
	wm, err := wa.UnmarshalNew()
	if err != nil {
		return fmt.Sprintf("%s: decode expected: %v", orRoot(path), err)
	}
	return diffMsg(path, gm.ProtoReflect(), wm.ProtoReflect())
}

func orRoot(p string) string {
	if p == "" {
		return "(resource)"
	}
	return p
}
