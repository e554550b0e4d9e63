package plugin

import (
	"path/filepath"
	"testing"
)

// FuzzParseConf: any stdin either parses into a config with an absolute agent socket
// (and a prevResult when required) or fails with an error — never a panic.
func FuzzParseConf(f *testing.F) {
	f.Add(conf("/run/a.sock", ""), true)
	f.Add([]byte(`{"cniVersion":"0.3.1","agentSocket":"/a","prevResult":{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.2/24"}]}}`), true)
	f.Add([]byte(`{"cniVersion":"1.0.0","agentSocket":"/a","prevResult":{"ips":[{"address":"::1/64","interface":-1}]}}`), true)
	f.Add([]byte(`{"cniVersion":"9.9.9","agentSocket":"/a","prevResult":{}}`), true)
	f.Add([]byte(`{}`), false)
	f.Fuzz(func(t *testing.T, data []byte, needPrev bool) {
		c, res, err := ParseConf(data, needPrev)
		if err != nil {
			return
		}
		if !filepath.IsAbs(c.AgentSocket) || c.CNIVersion == "" {
			t.Fatalf("accepted %+v", c)
		}
		if needPrev && res == nil {
			t.Fatal("accepted without prevResult")
		}
		if res != nil {
			for _, ip := range res.IPs {
				_ = ip.Address.IP.String()
			}
		}
	})
}

// FuzzParseArgs: CNI_ARGS parsing never panics.
func FuzzParseArgs(f *testing.F) {
	f.Add("K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_UID=c")
	f.Add("x;=;;==")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseArgs(s)
	})
}
