package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

const calico = `{
  "name": "k8s-pod-network",
  "cniVersion": "1.0.0",
  "plugins": [
    {"type": "calico", "mtu": 1450.50, "big": 12345678901234567890, "ipam": {"type": "calico-ipam"}},
    {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}}
  ],
  "x-unknown": {"keep": [1, 2.0, "three"]}
}`

const ours = `{"type":"ambit-cni","agentSocket":"/var/run/ambit/cni.sock"}`

// plugins decodes a conflist's plugins, compacted, for comparison.
func plugins(t *testing.T, data []byte) []string {
	t.Helper()
	_, ps, err := parseConflist(data)
	if err != nil {
		t.Fatalf("parse %s: %v", data, err)
	}
	var out []string
	for _, p := range ps {
		var b bytes.Buffer
		if err := json.Compact(&b, p); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.String())
	}
	return out
}

func topKeys(t *testing.T, data []byte) []string {
	t.Helper()
	o, err := parseObject(data)
	if err != nil {
		t.Fatal(err)
	}
	return o.keys
}

func TestInsertEntry(t *testing.T) {
	orig := plugins(t, []byte(calico))
	withOurs := func(ps ...string) string {
		return `{"cniVersion":"1.0.0","name":"n","plugins":[` + strings.Join(ps, ",") + `]}`
	}
	a, b := orig[0], orig[1]
	for _, tc := range []struct {
		name, in    string
		want        []string
		wantChanged bool
	}{
		{"appended", calico, []string{a, b, ours}, true},
		{"already last", withOurs(a, ours), []string{a, ours}, false},
		{"moved to the end", withOurs(ours, a, b), []string{a, b, ours}, true},
		{"duplicates collapsed", withOurs(a, ours, b, ours), []string{a, b, ours}, true},
		{"stale socket updated", withOurs(a, `{"type":"ambit-cni","agentSocket":"/old.sock"}`), []string{a, ours}, true},
		{"same entry, other key order", withOurs(a, `{"agentSocket":"/var/run/ambit/cni.sock","type":"ambit-cni"}`), []string{a, `{"agentSocket":"/var/run/ambit/cni.sock","type":"ambit-cni"}`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, changed, err := insertEntry([]byte(tc.in), entry("/var/run/ambit/cni.sock"))
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if got := plugins(t, out); !slices.Equal(got, tc.want) {
				t.Errorf("plugins =\n%v\nwant\n%v", got, tc.want)
			}
			if !slices.Equal(topKeys(t, out), topKeys(t, []byte(tc.in))) {
				t.Errorf("top-level keys reordered: %v", topKeys(t, out))
			}
			again, changed, err := insertEntry(out, entry("/var/run/ambit/cni.sock"))
			if err != nil || changed || !bytes.Equal(again, out) {
				t.Errorf("second insert changed = %v, err = %v", changed, err)
			}
		})
	}
}

func TestInsertKeepsUnknownFieldsExactly(t *testing.T) {
	out, _, err := insertEntry([]byte(calico), entry("/s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`1450.50`, `12345678901234567890`, `"x-unknown"`, `2.0`} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("output lost %s:\n%s", s, out)
		}
	}
	back, changed, err := removeEntry(out)
	if err != nil || !changed {
		t.Fatalf("remove: changed %v, %v", changed, err)
	}
	if !slices.Equal(plugins(t, back), plugins(t, []byte(calico))) {
		t.Errorf("remove did not restore the plugins:\n%s", back)
	}
	if _, changed, _ := removeEntry(back); changed {
		t.Error("second remove changed the file")
	}
}

func TestConvertConf(t *testing.T) {
	for _, tc := range []struct {
		name, in, wantVersion, wantName string
	}{
		{"bridge 1.0.0", `{"cniVersion":"1.0.0","name":"bridge-net","type":"bridge","bridge":"cni0","ipam":{"type":"host-local"}}`, "1.0.0", "bridge-net"},
		{"old version raised", `{"cniVersion":"0.2.0","name":"old","type":"bridge"}`, "0.3.1", "old"},
		{"no version, no name", `{"type":"bridge"}`, "0.3.1", "k8s-pod-network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := convertConf([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var list struct {
				CNIVersion string           `json:"cniVersion"`
				Name       string           `json:"name"`
				Plugins    []map[string]any `json:"plugins"`
			}
			if err := json.Unmarshal(out, &list); err != nil {
				t.Fatal(err)
			}
			if list.CNIVersion != tc.wantVersion || list.Name != tc.wantName || len(list.Plugins) != 1 {
				t.Fatalf("list = %+v", list)
			}
			if _, ok := list.Plugins[0]["cniVersion"]; ok || list.Plugins[0]["type"] != "bridge" {
				t.Errorf("plugin = %v, want the conf without cniVersion", list.Plugins[0])
			}
		})
	}
}

func TestMalformedConfigs(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"not json", `{"plugins": [`},
		{"array", `[]`},
		{"trailing data", `{"plugins":[{"type":"a"}]} {}`},
		{"no plugins", `{"name":"x"}`},
		{"plugins not a list", `{"plugins":{"type":"a"}}`},
		{"empty plugins", `{"plugins":[]}`},
		{"plugin without type", `{"plugins":[{"name":"a"}]}`},
		{"plugin not an object", `{"plugins":["bridge"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := insertEntry([]byte(tc.in), entry("/s.sock")); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("insert err = %v, want ErrInvalidConfig", err)
			}
			if _, _, err := removeEntry([]byte(tc.in)); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("remove err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	for _, in := range []string{`{"name":"x"}`, `{"plugins":[{"type":"a"}]}`, `nope`} {
		if _, err := convertConf([]byte(in)); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("convert %s: err = %v", in, err)
		}
	}
}

func FuzzInsertEntry(f *testing.F) {
	for _, s := range []string{calico, `{"plugins":[{"type":"a"}]}`, `{"plugins":[` + ours + `]}`, `{}`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, _, err := insertEntry(data, entry("/s.sock"))
		if err != nil {
			return
		}
		_, ps, err := parseConflist(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, out)
		}
		n := 0
		for _, p := range ps {
			if ty, _ := pluginType(p); ty == PluginType {
				n++
			}
		}
		if last, _ := pluginType(ps[len(ps)-1]); n != 1 || last != PluginType {
			t.Fatalf("want exactly one entry, last:\n%s", out)
		}
		if _, changed, err := insertEntry(out, entry("/s.sock")); err != nil || changed {
			t.Fatalf("not idempotent: %v", err)
		}
		if _, _, err := removeEntry(out); err != nil {
			t.Fatalf("remove: %v", err)
		}
	})
}
