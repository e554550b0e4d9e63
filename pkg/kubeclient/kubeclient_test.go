package kubeclient

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.10.0.1:6443"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`

func TestRESTConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", "")
	if _, err := RESTConfig("", "test"); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("no config: err = %v, want ErrNoConfig", err)
	}
	for name, set := range map[string]func() string{
		"flag": func() string { return path },
		"env":  func() string { t.Setenv("KUBECONFIG", path); return "" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := RESTConfig(set(), "test-agent")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != "https://10.10.0.1:6443" || cfg.BearerToken != "abc" || cfg.UserAgent != "test-agent" {
				t.Fatalf("config = %s %q %s", cfg.Host, cfg.BearerToken, cfg.UserAgent)
			}
		})
	}
	if _, err := RESTConfig(filepath.Join(t.TempDir(), "missing"), "x"); err == nil {
		t.Fatal("missing explicit file accepted")
	}
}
