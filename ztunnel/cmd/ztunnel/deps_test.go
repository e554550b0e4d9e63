package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFootprintDependencies guards ztunnel's resident memory, most of which is the
// binary's own pages: it must not link go-control-plane's Envoy API (WDS goes through
// pkg/xdsclient/delta), and built with -tags grpcnotrace it must not link
// golang.org/x/net/trace, whose html/template makes the linker keep every exported
// method of every type in the binary (about 4.4 MB of text and tables, 3 MB of RSS).
func TestFootprintDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	tests := []struct {
		name      string
		tags      string
		forbidden []string
	}{
		{"default build", "", []string{"github.com/envoyproxy/", "github.com/cncf/xds/"}},
		{"grpcnotrace build", "grpcnotrace", []string{"github.com/envoyproxy/", "github.com/cncf/xds/",
			"golang.org/x/net/trace", "text/template", "html/template"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(goTool, "list", "-deps", "-tags", tc.tags, ".").Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			for _, pkg := range strings.Fields(string(out)) {
				for _, f := range tc.forbidden {
					if pkg == f || strings.HasPrefix(pkg, f) {
						t.Errorf("ztunnel links %s", pkg)
					}
				}
			}
		})
	}
}
