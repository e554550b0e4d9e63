package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ambitmesh/ambit/cni/agent/podapi"
)

// fakeAgent serves the pod event API on a temp Unix socket and records requests.
type fakeAgent struct {
	sock   string
	mu     sync.Mutex
	adds   []podapi.AddRequest
	dels   []podapi.DelRequest
	status int // answer code; 0 means 200
}

func newFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	dir, err := os.MkdirTemp("", "cni")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	f := &fakeAgent{sock: filepath.Join(dir, "agent.sock")}
	l, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+podapi.PathAdd, func(w http.ResponseWriter, r *http.Request) {
		var req podapi.AddRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		f.adds = append(f.adds, req)
		f.mu.Unlock()
		f.answer(w)
	})
	mux.HandleFunc("POST "+podapi.PathDel, func(w http.ResponseWriter, r *http.Request) {
		var req podapi.DelRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		f.dels = append(f.dels, req)
		f.mu.Unlock()
		f.answer(w)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return f
}

func (f *fakeAgent) answer(w http.ResponseWriter) {
	f.mu.Lock()
	code := f.status
	f.mu.Unlock()
	if code == 0 || code == 200 {
		return
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(podapi.ErrorResponse{Error: "cgroup not found"})
}

const prevResult = `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/p1"}],
 "ips":[{"address":"10.20.1.5/24","gateway":"10.20.1.1","interface":0}]}`

func conf(socket string, extra string) []byte {
	return []byte(`{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"ambit-cni","agentSocket":"` + socket + `"` + extra +
		`,"prevResult":` + prevResult + `}`)
}

func cmdArgs(stdin []byte) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: "sandbox1", Netns: "/var/run/netns/p1", IfName: "eth0",
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=apps;K8S_POD_NAME=web;K8S_POD_UID=u1;K8S_POD_INFRA_CONTAINER_ID=sandbox1", StdinData: stdin}
}

func cniCode(t *testing.T, err error) uint {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *types.Error", err)
	}
	return e.Code
}

func TestAddPostsPodAndPassesResultThrough(t *testing.T) {
	agent := newFakeAgent(t)
	var out bytes.Buffer
	p := &Plugin{Stdout: &out, Stderr: &bytes.Buffer{}}
	if err := p.Add(cmdArgs(conf(agent.sock, ""))); err != nil {
		t.Fatalf("add: %v", err)
	}
	want := podapi.AddRequest{UID: "u1", Name: "web", Namespace: "apps", Netns: "/var/run/netns/p1", IPs: []string{"10.20.1.5"}, ContainerID: "sandbox1"}
	if len(agent.adds) != 1 || !equalAdd(agent.adds[0], want) {
		t.Fatalf("agent got %+v, want %+v", agent.adds, want)
	}
	var res current.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("result %q: %v", out.String(), err)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.20.1.5/24" || res.CNIVersion != "1.0.0" {
		t.Fatalf("result not passed through: %s", out.String())
	}
}

func equalAdd(a, b podapi.AddRequest) bool {
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	return bytes.Equal(aj, bj)
}

func TestAddErrors(t *testing.T) {
	agent := newFakeAgent(t)
	missing := filepath.Join(filepath.Dir(agent.sock), "nope.sock")
	cases := []struct {
		name     string
		stdin    []byte
		args     string
		status   int
		wantCode uint
		wantOut  bool // success with the result printed
	}{
		{"not json", []byte("{"), "", 0, types.ErrDecodingFailure, false},
		{"no agentSocket", []byte(`{"cniVersion":"1.0.0","name":"n","type":"ambit-cni","prevResult":` + prevResult + `}`), "", 0, types.ErrInvalidNetworkConfig, false},
		{"relative agentSocket", conf("agent.sock", ""), "", 0, types.ErrInvalidNetworkConfig, false},
		{"no prevResult", []byte(`{"cniVersion":"1.0.0","name":"n","type":"ambit-cni","agentSocket":"/x"}`), "", 0, types.ErrInvalidNetworkConfig, false},
		{"bad prevResult", []byte(`{"cniVersion":"1.0.0","name":"n","type":"ambit-cni","agentSocket":"/x","prevResult":{"ips":[{"address":"bogus"}]}}`), "", 0, types.ErrDecodingFailure, false},
		{"malformed CNI_ARGS", conf(agent.sock, ""), "K8S_POD_NAME", 0, types.ErrInvalidEnvironmentVariables, false},
		{"missing uid", conf(agent.sock, ""), "K8S_POD_NAMESPACE=apps;K8S_POD_NAME=web", 0, types.ErrInvalidEnvironmentVariables, false},
		{"not a k8s pod passes through", conf(agent.sock, ""), "FOO=bar", 0, 0, true},
		{"agent fails", conf(agent.sock, ""), "", 500, types.ErrInternal, false},
		{"agent unreachable", conf(missing, ""), "", 0, types.ErrTryAgainLater, false},
		{"agent unreachable failOpen", conf(missing, `,"failOpen":true`), "", 0, 0, true},
		{"agent fails with failOpen still fails", conf(agent.sock, `,"failOpen":true`), "", 500, types.ErrInternal, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent.mu.Lock()
			agent.status = tc.status
			agent.mu.Unlock()
			args := cmdArgs(tc.stdin)
			if tc.args != "" {
				args.Args = tc.args
			}
			var out, logs bytes.Buffer
			err := (&Plugin{Stdout: &out, Stderr: &logs}).Add(args)
			if tc.wantOut {
				if err != nil || !strings.Contains(out.String(), "10.20.1.5/24") {
					t.Fatalf("err = %v, out = %q", err, out.String())
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if code := cniCode(t, err); code != tc.wantCode {
				t.Fatalf("code = %d (%v), want %d", code, err, tc.wantCode)
			}
			if out.Len() != 0 {
				t.Fatalf("printed a result on failure: %q", out.String())
			}
		})
	}
}

func TestDel(t *testing.T) {
	agent := newFakeAgent(t)
	missing := filepath.Join(filepath.Dir(agent.sock), "nope.sock")
	del := func(stdin []byte) error {
		a := cmdArgs(stdin)
		return (&Plugin{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}).Del(a)
	}
	noPrev := []byte(`{"cniVersion":"1.0.0","name":"n","type":"ambit-cni","agentSocket":"` + agent.sock + `"}`)
	if err := del(noPrev); err != nil {
		t.Fatalf("del: %v", err)
	}
	if len(agent.dels) != 1 || agent.dels[0] != (podapi.DelRequest{UID: "u1", ContainerID: "sandbox1"}) {
		t.Fatalf("agent got %+v", agent.dels)
	}
	if err := del(conf(missing, "")); err != nil {
		t.Fatalf("del with agent gone must succeed: %v", err)
	}
	agent.mu.Lock()
	agent.status = 500
	agent.mu.Unlock()
	if err := del(noPrev); err == nil || cniCode(t, err) != types.ErrInternal {
		t.Fatalf("del with failing agent: %v", err)
	}
	if err := del([]byte("{")); err == nil || cniCode(t, err) != types.ErrDecodingFailure {
		t.Fatalf("del with broken conf: %v", err)
	}
}

func TestCheckAndStatus(t *testing.T) {
	agent := newFakeAgent(t)
	p := &Plugin{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	if err := p.Check(cmdArgs(conf(agent.sock, ""))); err != nil {
		t.Fatalf("check: %v", err)
	}
	if err := p.Check(cmdArgs([]byte(`{"cniVersion":"1.0.0","name":"n","agentSocket":"/x"}`))); err == nil {
		t.Fatal("check without prevResult passed")
	}
	if err := p.Status(cmdArgs(conf(agent.sock, ""))); err != nil {
		t.Fatalf("status: %v", err)
	}
	gone := conf(filepath.Join(filepath.Dir(agent.sock), "nope.sock"), "")
	if err := p.Status(cmdArgs(gone)); err == nil || cniCode(t, err) != types.ErrPluginNotAvailable {
		t.Fatalf("status with agent gone: %v", err)
	}
}
