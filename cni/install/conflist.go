package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containernetworking/cni/pkg/version"
)

// PluginType is the "type" of Ambit's entry in a conflist (the binary name in BinDir).
const PluginType = "ambit-cni"

// ErrInvalidConfig marks a CNI network config that cannot be used as the primary one.
var ErrInvalidConfig = errors.New("invalid CNI network config")

// Defaults of a conflist built from a single-plugin .conf, as Istio's install-cni:
// name "k8s-pod-network" when the conf has none, and cniVersion 0.3.1 (the oldest
// version that chains) when the conf's is older.
const (
	defaultListName    = "k8s-pod-network"
	minChainingVersion = "0.3.1"
)

// object is a JSON object that keeps its keys' order and its values' bytes, so a
// rewrite leaves everything Ambit does not own exactly as it was.
type object struct {
	keys []string
	vals map[string]json.RawMessage
}

// parseObject decodes a JSON object; anything else (or trailing data) is an error.
func parseObject(data []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	o := &object{vals: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string) // object keys are always strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		o.set(key, v)
	}
	if _, err := dec.Token(); err != nil { // closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	return o, nil
}

// set replaces key's value, appending the key when new.
func (o *object) set(key string, v json.RawMessage) {
	if _, ok := o.vals[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.vals[key] = v
}

func (o *object) del(key string) {
	if _, ok := o.vals[key]; !ok {
		return
	}
	delete(o.vals, key)
	for i, k := range o.keys {
		if k == key {
			o.keys = append(o.keys[:i], o.keys[i+1:]...)
			break
		}
	}
}

// str returns key's value when it is a JSON string.
func (o *object) str(key string) (string, bool) {
	var s string
	if v, ok := o.vals[key]; !ok || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// marshal writes the object, indented with two spaces, with a final newline.
func (o *object) marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(o.vals[k])
	}
	b.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// parseConflist decodes a .conflist and its plugins; it needs a non-empty "plugins"
// array of objects each with a string "type".
func parseConflist(data []byte) (*object, []json.RawMessage, error) {
	o, err := parseObject(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	raw, ok := o.vals["plugins"]
	if !ok {
		return nil, nil, fmt.Errorf("%w: no \"plugins\" list", ErrInvalidConfig)
	}
	var plugins []json.RawMessage
	if err := json.Unmarshal(raw, &plugins); err != nil {
		return nil, nil, fmt.Errorf("%w: \"plugins\": %w", ErrInvalidConfig, err)
	}
	if len(plugins) == 0 {
		return nil, nil, fmt.Errorf("%w: empty \"plugins\" list", ErrInvalidConfig)
	}
	for i, p := range plugins {
		if _, err := pluginType(p); err != nil {
			return nil, nil, fmt.Errorf("%w: plugin %d: %w", ErrInvalidConfig, i, err)
		}
	}
	return o, plugins, nil
}

// pluginType returns a plugin entry's "type".
func pluginType(p json.RawMessage) (string, error) {
	var v struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(p, &v); err != nil {
		return "", err
	}
	if v.Type == nil || *v.Type == "" {
		return "", errors.New("no \"type\"")
	}
	return *v.Type, nil
}

// convertConf turns a single-plugin .conf into a conflist holding that plugin (its
// cniVersion moved to the list), as Istio's install-cni does before chaining.
func convertConf(data []byte) ([]byte, error) {
	conf, err := parseObject(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if t, ok := conf.str("type"); !ok || t == "" {
		return nil, fmt.Errorf("%w: no \"type\" (a conflist in a .conf file?)", ErrInvalidConfig)
	}
	name, ok := conf.str("name")
	if !ok || name == "" {
		name = defaultListName
	}
	ver, _ := conf.str("cniVersion")
	if ok, err := version.GreaterThanOrEqualTo(ver, minChainingVersion); err != nil || !ok {
		ver = minChainingVersion
	}
	conf.del("cniVersion")
	plugin, err := conf.marshal()
	if err != nil {
		return nil, err
	}
	verJSON, _ := json.Marshal(ver)
	nameJSON, _ := json.Marshal(name)
	list := &object{vals: map[string]json.RawMessage{}}
	list.set("cniVersion", verJSON)
	list.set("name", nameJSON)
	list.set("plugins", json.RawMessage("["+strings.TrimSpace(string(plugin))+"]"))
	return list.marshal()
}

// entry returns Ambit's plugin entry. cniVersion and name are not in it: a runtime
// injects the list's into every plugin it runs.
func entry(agentSocket string) json.RawMessage {
	b, _ := json.Marshal(struct {
		Type        string `json:"type"`
		AgentSocket string `json:"agentSocket"`
	}{PluginType, agentSocket})
	return b
}

// insertEntry returns the conflist with exactly one Ambit entry, the given one, as the
// last plugin; changed is false when the data already has exactly that.
func insertEntry(data []byte, ours json.RawMessage) (out []byte, changed bool, err error) {
	o, plugins, err := parseConflist(data)
	if err != nil {
		return nil, false, err
	}
	kept := withoutOurs(plugins)
	if len(kept) == len(plugins)-1 && sameJSON(plugins[len(plugins)-1], ours) {
		return data, false, nil
	}
	return setPlugins(o, append(kept, ours))
}

// removeEntry returns the conflist without Ambit's entries; changed is false when it
// had none.
func removeEntry(data []byte) (out []byte, changed bool, err error) {
	o, plugins, err := parseConflist(data)
	if err != nil {
		return nil, false, err
	}
	kept := withoutOurs(plugins)
	if len(kept) == len(plugins) {
		return data, false, nil
	}
	return setPlugins(o, kept)
}

func withoutOurs(plugins []json.RawMessage) []json.RawMessage {
	kept := make([]json.RawMessage, 0, len(plugins))
	for _, p := range plugins {
		if t, _ := pluginType(p); t != PluginType {
			kept = append(kept, p)
		}
	}
	return kept
}

func setPlugins(o *object, plugins []json.RawMessage) ([]byte, bool, error) {
	raw, err := json.Marshal(plugins)
	if err != nil {
		return nil, false, err
	}
	o.set("plugins", raw)
	out, err := o.marshal()
	return out, err == nil, err
}

// sameJSON reports whether a and b decode to equal values.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
