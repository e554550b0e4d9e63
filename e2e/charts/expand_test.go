package charts

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestExpandArgs(t *testing.T) {
	downward := &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}
	tests := []struct {
		name string
		args []string
		cEnv []corev1.EnvVar
		env  map[string]string
		want []string
	}{
		{"plain", []string{"--a=b", "c"}, nil, nil, []string{"--a=b", "c"}},
		{"downward from env map", []string{"--node-name=$(NODE_NAME)"}, []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: downward}}, map[string]string{"NODE_NAME": "node-a"}, []string{"--node-name=node-a"}},
		{"unresolved valueFrom stays", []string{"--node-name=$(NODE_NAME)"}, []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: downward}}, nil, []string{"--node-name=$(NODE_NAME)"}},
		{"undefined stays", []string{"$(NOPE)x"}, nil, nil, []string{"$(NOPE)x"}},
		{"literal env", []string{"--x=$(A)"}, []corev1.EnvVar{{Name: "A", Value: "1"}}, nil, []string{"--x=1"}},
		{"env map wins over literal", []string{"$(A)"}, []corev1.EnvVar{{Name: "A", Value: "1"}}, map[string]string{"A": "2"}, []string{"2"}},
		{"literal refers to earlier", []string{"$(B)"}, []corev1.EnvVar{{Name: "A", Value: "x"}, {Name: "B", Value: "$(A)-y"}}, nil, []string{"x-y"}},
		{"literal cannot refer to later", []string{"$(A)"}, []corev1.EnvVar{{Name: "A", Value: "$(B)"}, {Name: "B", Value: "x"}}, nil, []string{"$(B)"}},
		{"extra map variable", []string{"$(EXTRA)"}, nil, map[string]string{"EXTRA": "e"}, []string{"e"}},
		{"escaped", []string{"$$(A)", "$$", "a$$b"}, []corev1.EnvVar{{Name: "A", Value: "1"}}, nil, []string{"$(A)", "$", "a$b"}},
		{"escape then reference", []string{"$$$(A)"}, []corev1.EnvVar{{Name: "A", Value: "1"}}, nil, []string{"$1"}},
		{"lone dollars", []string{"$", "a$", "$x", "a$b$"}, nil, nil, []string{"$", "a$", "$x", "a$b$"}},
		{"unterminated", []string{"$(A", "x$(", "$(A$(B)"}, nil, map[string]string{"B": "b"}, []string{"$(A", "x$(", "$(A$(B)"}},
		{"empty name", []string{"$()"}, nil, nil, []string{"$()"}},
		{"value not re-expanded", []string{"$(A)"}, nil, map[string]string{"A": "$(B)", "B": "no"}, []string{"$(B)"}},
		{"several", []string{"$(A)/$(B)/$(A)"}, nil, map[string]string{"A": "1", "B": "2"}, []string{"1/2/1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &corev1.Container{Args: tc.args, Env: tc.cEnv}
			got := ExpandArgs(c, tc.env)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ExpandArgs(%q) = %q, want %q", tc.args, got, tc.want)
			}
			if !slices.Equal(c.Args, tc.args) {
				t.Fatalf("ExpandArgs changed the container's args to %q", c.Args)
			}
		})
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "$", "$$", "$(A)", "$(", "a$(B)c$$d", "$(A$(B))", "$$$(A)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		undefined := func(string) (string, bool) { return "", false }
		// With nothing defined and no "$$" escape, nothing changes.
		if !strings.Contains(s, "$$") {
			if got := Expand(s, undefined); got != s {
				t.Fatalf("Expand(%q) with no variables = %q, want it unchanged", s, got)
			}
		}
		// Escaping every "$" turns any text into a literal, even with every name defined.
		empty := func(string) (string, bool) { return "", true }
		out := Expand(strings.ReplaceAll(s, "$", "$$"), empty)
		if out != s {
			t.Fatalf("Expand(escaped %q) = %q, want the input back", s, out)
		}
	})
}
