package forward

import (
	"errors"
	"flag"
	"testing"
)

func TestParseMapping(t *testing.T) {
	tests := []struct {
		in   string
		want Mapping
		ok   bool
	}{
		{"127.0.0.1:8080=10.20.2.3:28080", Mapping{"127.0.0.1:8080", "10.20.2.3:28080"}, true},
		{":28080=10.20.2.3:8080", Mapping{":28080", "10.20.2.3:8080"}, true},
		{"[::1]:1=[fd00::1]:65535", Mapping{"[::1]:1", "[fd00::1]:65535"}, true},
		{"127.0.0.1:8080", Mapping{}, false},
		{"127.0.0.1:8080=:8080", Mapping{}, false},
		{"127.0.0.1=10.0.0.1:80", Mapping{}, false},
		{"127.0.0.1:0=10.0.0.1:80", Mapping{"127.0.0.1:0", "10.0.0.1:80"}, true},
		{"127.0.0.1:80=10.0.0.1:0", Mapping{}, false},
		{"127.0.0.1:-1=10.0.0.1:80", Mapping{}, false},
		{"127.0.0.1:80=10.0.0.1:65536", Mapping{}, false},
		{"127.0.0.1:80=10.0.0.1:http", Mapping{}, false},
		{"a:1=b:2=c:3", Mapping{}, false},
		{"", Mapping{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMapping(tc.in)
			if tc.ok != (err == nil) || got != tc.want {
				t.Fatalf("ParseMapping(%q) = %+v, %v; want %+v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadMapping) {
				t.Errorf("error %v does not wrap ErrBadMapping", err)
			}
			if err == nil && got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func TestMappingsFlag(t *testing.T) {
	var ms Mappings
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Var(&ms, "forward", "")
	if err := fs.Parse([]string{"--forward", "127.0.0.1:1=h:2", "--forward", ":3=h:4"}); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[1] != (Mapping{":3", "h:4"}) || ms.String() != "127.0.0.1:1=h:2,:3=h:4" {
		t.Fatalf("mappings %v", ms)
	}
	if err := fs.Parse([]string{"--forward", "nope"}); err == nil {
		t.Fatal("bad mapping accepted")
	}
}

func FuzzParseMapping(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8080=10.20.2.3:28080", ":1=h:2", "=", "a=b", "[::1]:1=[::2]:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMapping(s)
		if err != nil {
			return
		}
		back, err := ParseMapping(m.String())
		if err != nil || back != m {
			t.Fatalf("%q parsed to %+v, which does not round-trip: %+v, %v", s, m, back, err)
		}
	})
}
