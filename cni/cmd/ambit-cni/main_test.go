package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ambitmesh/ambit/cni/agent"
)

// TestMain lets the test binary act as the plugin: a test re-executes itself with
// AMBIT_CNI_AS_PLUGIN=1 and the CNI environment, exactly as a container runtime runs a
// plugin binary.
func TestMain(m *testing.M) {
	if os.Getenv("AMBIT_CNI_AS_PLUGIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type result struct {
	stdout, stderr string
	exitCode       int
}

// runPlugin executes the plugin with CNI_* variables and stdin config.
func runPlugin(t *testing.T, command, stdin string, env map[string]string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{"AMBIT_CNI_AS_PLUGIN=1", "CNI_COMMAND=" + command, "CNI_PATH=/opt/cni/bin", "CNI_NETNS_OVERRIDE=1"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// recordingRedirector is a minimal agent.Redirector recording enrolled pods.
type recordingRedirector struct {
	mu   sync.Mutex
	pods map[string]agent.PodNet
}

func (r *recordingRedirector) Enrol(p agent.PodNet) (*os.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pods[p.UID] = p
	return nil, nil
}

func (r *recordingRedirector) Unenrol(uid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pods, uid)
	return nil
}

func (r *recordingRedirector) Enrolled() ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for uid := range r.pods {
		out = append(out, uid)
	}
	return out, nil
}

func (r *recordingRedirector) has(uid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.pods[uid]
	return ok
}

const config = `apiVersion: v1
kind: Namespace
metadata:
  name: apps
  labels:
    istio.io/dataplane-mode: ambient
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: apps
spec:
  containers:
  - name: app
    image: app
`

// startAgent runs a real node agent (fake redirection, no ztunnel) and returns its CNI
// socket, the redirector and the pod's netns stand-in.
func startAgent(t *testing.T) (string, *recordingRedirector, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cnic")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for _, d := range []string{"cfg", "cg/kubepods/podu1"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cfg", "c.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	netns := filepath.Join(dir, "netns-p1")
	if err := os.WriteFile(netns, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	redir := &recordingRedirector{pods: map[string]agent.PodNet{}}
	sock := filepath.Join(dir, "cni.sock")
	a, err := agent.New(agent.Config{ConfigDir: filepath.Join(dir, "cfg"), ZDSSocket: filepath.Join(dir, "zds.sock"), CNISocket: sock,
		CgroupRoot: filepath.Join(dir, "cg"), StateDir: filepath.Join(dir, "state"), Redirector: redir,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("agent socket never appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return sock, redir, netns
}

func netconf(sock, extra string) string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"ambit-cni","agentSocket":%q%s,
 "prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"10.20.1.5/24","interface":0}]}}`, sock, extra)
}

func TestPluginLikeARuntime(t *testing.T) {
	sock, redir, netns := startAgent(t)
	env := map[string]string{
		"CNI_CONTAINERID": "sandbox1", "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
		"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=apps;K8S_POD_NAME=web;K8S_POD_UID=u1",
	}

	t.Run("VERSION", func(t *testing.T) {
		r := runPlugin(t, "VERSION", `{"cniVersion":"1.0.0"}`, nil)
		if r.exitCode != 0 || !strings.Contains(r.stdout, `"1.0.0"`) || !strings.Contains(r.stdout, `"0.3.1"`) {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("ADD enrols before returning and passes the result through", func(t *testing.T) {
		r := runPlugin(t, "ADD", netconf(sock, ""), env)
		if r.exitCode != 0 {
			t.Fatalf("ADD failed: %+v", r)
		}
		if !redir.has("u1") {
			t.Fatal("pod not redirected when ADD returned")
		}
		if !strings.Contains(r.stdout, "10.20.1.5/24") {
			t.Fatalf("result = %s", r.stdout)
		}
	})
	t.Run("CHECK", func(t *testing.T) {
		if r := runPlugin(t, "CHECK", netconf(sock, ""), env); r.exitCode != 0 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("DEL cleans up, twice", func(t *testing.T) {
		for range 2 {
			if r := runPlugin(t, "DEL", netconf(sock, ""), env); r.exitCode != 0 {
				t.Fatalf("%+v", r)
			}
		}
		if redir.has("u1") {
			t.Fatal("pod still redirected after DEL")
		}
	})
	t.Run("broken config is a CNI error", func(t *testing.T) {
		for _, stdin := range []string{`{"cniVersion":"1.0.0","name":"n","type":"ambit-cni"`, `{"cniVersion":"1.0.0","name":"n","type":"ambit-cni","prevResult":{}}`} {
			r := runPlugin(t, "ADD", stdin, env)
			var e types.Error
			if r.exitCode == 0 || json.Unmarshal([]byte(r.stdout), &e) != nil || e.Code == 0 || e.Msg == "" {
				t.Fatalf("want CNI error JSON, got %+v", r)
			}
			if strings.Contains(r.stderr, "panic") {
				t.Fatalf("panicked: %s", r.stderr)
			}
		}
	})
	t.Run("agent gone: ADD fails (code 11), failOpen passes, DEL succeeds", func(t *testing.T) {
		gone := filepath.Join(filepath.Dir(sock), "gone.sock")
		r := runPlugin(t, "ADD", netconf(gone, ""), env)
		var e types.Error
		if r.exitCode == 0 || json.Unmarshal([]byte(r.stdout), &e) != nil || e.Code != types.ErrTryAgainLater {
			t.Fatalf("%+v", r)
		}
		if r := runPlugin(t, "ADD", netconf(gone, `,"failOpen":true`), env); r.exitCode != 0 || !strings.Contains(r.stderr, "WARNING") {
			t.Fatalf("failOpen: %+v", r)
		}
		if r := runPlugin(t, "DEL", netconf(gone, ""), env); r.exitCode != 0 {
			t.Fatalf("DEL: %+v", r)
		}
	})
}
