package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestKubeFlags(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string
		configDir   string
		inCluster   bool
		wantKube    bool
		wantErr     string
		wantInstall bool
	}{
		{name: "file mode", configDir: "/cfg"},
		{name: "kubeconfig", args: []string{"--kubeconfig", "/k"}, wantKube: true, wantInstall: true},
		{name: "in cluster", inCluster: true, wantKube: true, wantInstall: true},
		{name: "config dir wins in cluster", configDir: "/cfg", inCluster: true},
		{name: "install off", args: []string{"--kubeconfig", "/k", "--install-cni=false"}, wantKube: true},
		{name: "install on in file mode", args: []string{"--install-cni"}, configDir: "/cfg", wantInstall: true},
		{name: "both sources", args: []string{"--kubeconfig", "/k"}, configDir: "/cfg", wantErr: "mutually exclusive"},
		{name: "no source", wantErr: "--config-dir or --kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := ""
			if tc.inCluster {
				host = "10.96.0.1"
			}
			t.Setenv("KUBERNETES_SERVICE_HOST", host)
			t.Setenv("KUBECONFIG", "")
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			kf := addKubeFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			kube, err := kf.mode(tc.configDir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || kube != tc.wantKube || kf.installCNI.value(kube) != tc.wantInstall {
				t.Fatalf("kube = %v, install = %v, err = %v", kube, kf.installCNI.value(kube), err)
			}
		})
	}
}

func TestRunRejectsBadZtunnelDownPolicy(t *testing.T) {
	err := run(t.Context(), []string{"--node-name", "n", "--config-dir", "/cfg", "--ztunnel-down-policy", "maybe"})
	if err == nil || !strings.Contains(err.Error(), "--ztunnel-down-policy") {
		t.Fatalf("err = %v", err)
	}
}
