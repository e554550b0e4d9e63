package charts

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ExpandArgs returns c.Args with $(VAR) references expanded the way the kubelet expands
// container command and args: the variables are c.Env in order (a literal value may
// itself refer to earlier variables), where env supplies the values the kubelet would
// resolve (valueFrom: downward API, ConfigMaps, Secrets) and may add variables of its
// own; env wins over a literal value. "$$" is an escaped "$"; a reference to an
// undefined variable, an unterminated "$(" and any other "$" stay as written.
func ExpandArgs(c *corev1.Container, env map[string]string) []string {
	vars := make(map[string]string, len(c.Env)+len(env))
	lookup := func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
	for _, e := range c.Env {
		if v, ok := env[e.Name]; ok {
			vars[e.Name] = v
		} else if e.ValueFrom == nil {
			vars[e.Name] = Expand(e.Value, lookup)
		}
	}
	for k, v := range env {
		vars[k] = v
	}
	out := make([]string, len(c.Args))
	for i, a := range c.Args {
		out[i] = Expand(a, lookup)
	}
	return out
}

// Expand replaces $(NAME) in s by lookup(NAME) when defined, "$$" by "$", and keeps
// everything else as written (the kubelet's expansion rules for command, args and env).
func Expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch next := s[i+1]; next {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
