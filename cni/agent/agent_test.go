package agent

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/cni/agent/podapi"
)

func TestAddEnrolsAmbientPodAndDelRemovesIt(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(nsAmbient + podYAML("web", "u1", "web-sa", "") + podYAML("db", "u2", "", ""))
	z := newFakeZtunnel(e.j)
	_, _ = e.startAgent()
	e.startZtunnel(z)
	c := e.client()

	add := e.newPod("u1", "apps", "web", "10.20.1.5")
	if err := c.Add(ctxT(t), add); err != nil {
		t.Fatalf("add: %v", err)
	}
	// The ack may have come from the live Add or the first snapshot; either way the
	// answer is sent only after redirection and hand-off.
	if !e.redir.has("u1") {
		t.Fatal("not redirected after 200")
	}
	got := e.redir.get("u1")
	if got.IP.String() != "10.20.1.5" || !strings.HasSuffix(got.Cgroup, "kubepods/podu1") || got.Netns != add.Netns ||
		len(got.ProbeSources) != 1 {
		t.Errorf("redirect got %+v", got)
	}
	eventually(t, func() bool { return z.info("u1") != nil }, "ztunnel has u1")
	if info := z.info("u1"); info.GetServiceAccount() != "web-sa" || info.GetName() != "web" || info.GetNamespace() != "apps" {
		t.Errorf("workload info = %v", info)
	}
	db := e.newPod("u2", "apps", "db", "10.20.1.6")
	if err := c.Add(ctxT(t), db); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return z.info("u2") != nil }, "ztunnel has u2")
	if sa := z.info("u2").GetServiceAccount(); sa != "default" {
		t.Errorf("default service account = %q", sa)
	}

	// A DEL for an older sandbox of the same pod changes nothing.
	if err := c.Del(ctxT(t), podapi.DelRequest{UID: "u1", ContainerID: "older"}); err != nil {
		t.Fatal(err)
	}
	if !e.redir.has("u1") {
		t.Fatal("stale DEL unenrolled the pod")
	}
	if err := c.Del(ctxT(t), podapi.DelRequest{UID: "u1", ContainerID: add.ContainerID}); err != nil {
		t.Fatal(err)
	}
	if e.redir.has("u1") || z.info("u1") != nil {
		t.Fatal("pod still enrolled after DEL")
	}
	assertBefore(t, e.j.list(), "ztunnel del u1", "redirect unenrol u1")
	// DEL is idempotent.
	if err := c.Del(ctxT(t), podapi.DelRequest{UID: "u1", ContainerID: add.ContainerID}); err != nil {
		t.Fatalf("second del: %v", err)
	}
}

func TestAddNonAmbientPodIsRegisteredOnly(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(nsPlain + podYAML("web", "u1", "", ""))
	e.startAgent()
	c := e.client()
	for _, req := range []podapi.AddRequest{
		e.newPod("u1", "apps", "web", "10.20.1.5"),
		e.newPod("u9", "apps", "unknown", "10.20.1.9"), // not in config
	} {
		if err := c.Add(ctxT(t), req); err != nil {
			t.Fatalf("add %s: %v", req.UID, err)
		}
	}
	if got, _ := e.redir.Enrolled(); len(got) != 0 {
		t.Fatalf("enrolled %v", got)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(nsPlain)
	e.startAgent()
	hc := &http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", e.cniSock) }}}
	cases := []struct {
		name, path, body string
		want             int
	}{
		{"not json", podapi.PathAdd, "{", 400},
		{"missing uid", podapi.PathAdd, `{"name":"a","namespace":"b","netns":"/x"}`, 400},
		{"relative netns", podapi.PathAdd, `{"uid":"u","name":"a","namespace":"b","netns":"x"}`, 400},
		{"bad ip", podapi.PathAdd, `{"uid":"u","name":"a","namespace":"b","netns":"/x","ips":["10.0.0.300"]}`, 400},
		{"del without ids", podapi.PathDel, `{}`, 400},
		{"huge body", podapi.PathAdd, `{"uid":"` + strings.Repeat("x", podapi.MaxBody) + `"}`, 400},
		{"unknown del", podapi.PathDel, `{"uid":"nope"}`, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := hc.Post("http://agent"+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != 200 {
				var er podapi.ErrorResponse
				if err := json.NewDecoder(resp.Body).Decode(&er); err != nil || er.Error == "" {
					t.Fatalf("error body: %v %+v", err, er)
				}
			}
		})
	}
}

func TestLiveRelabelEnrolsAndUnenrolsRegisteredPods(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(nsPlain + podYAML("web", "u1", "web-sa", "") + podYAML("db", "u2", "", ""))
	z := newFakeZtunnel(e.j)
	a, _ := e.startAgent()
	e.startZtunnel(z)
	c := e.client()
	for _, req := range []podapi.AddRequest{e.newPod("u1", "apps", "web", "10.20.1.5"), e.newPod("u2", "apps", "db", "10.20.1.6")} {
		if err := c.Add(ctxT(t), req); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name   string
		config string
		want   []string // enrolled uids
	}{
		{"label namespace ambient", nsAmbient + podYAML("web", "u1", "web-sa", "") + podYAML("db", "u2", "", ""), []string{"u1", "u2"}},
		{"pod opts out", nsAmbient + podYAML("web", "u1", "web-sa", "") + podYAML("db", "u2", "", "istio.io/dataplane-mode: none"), []string{"u1"}},
		{"namespace label removed", nsPlain + podYAML("web", "u1", "web-sa", "") + podYAML("db", "u2", "", "istio.io/dataplane-mode: none"), nil},
		{"pod label ambient", nsPlain + podYAML("web", "u1", "web-sa", "istio.io/dataplane-mode: ambient") + podYAML("db", "u2", "", ""), []string{"u1"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e.writeConfig(st.config)
			eventually(t, func() bool {
				got, _ := e.redir.Enrolled()
				return slices.Equal(got, st.want) && slices.Equal(ztunnelUIDs(z), st.want) && slices.Equal(ackedUIDs(a), st.want)
			}, "enrolled = "+strings.Join(st.want, ","))
		})
	}
	// Every unenrol told ztunnel before removing redirection.
	assertBefore(t, e.j.list(), "ztunnel del u2", "redirect unenrol u2")
}

func ztunnelUIDs(z *fakeZtunnel) []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []string
	for uid := range z.wls {
		out = append(out, uid)
	}
	slices.Sort(out)
	return out
}

func ackedUIDs(a *Agent) []string {
	var out []string
	for _, st := range a.statuses() {
		if st.Acked && st.Annotations["ambient.istio.io/redirection"] == "enabled" {
			out = append(out, st.UID)
		}
	}
	slices.Sort(out)
	return out
}

func assertBefore(t *testing.T, events []string, first, second string) {
	t.Helper()
	i, j := slices.Index(events, first), slices.Index(events, second)
	if i < 0 || j < 0 || i > j {
		t.Fatalf("want %q before %q in %v", first, second, events)
	}
}

func TestZtunnelDownPodStartsAndIsHandedOffLater(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(nsAmbient + podYAML("web", "u1", "", ""))
	a, _ := e.startAgent()
	start := time.Now()
	if err := e.client().Add(ctxT(t), e.newPod("u1", "apps", "web", "10.20.1.5")); err != nil {
		t.Fatalf("add without ztunnel: %v", err)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("pod add waited on the missing ztunnel")
	}
	if !e.redir.has("u1") {
		t.Fatal("not redirected")
	}
	z := newFakeZtunnel(e.j)
	e.startZtunnel(z)
	eventually(t, func() bool { return z.info("u1") != nil && slices.Equal(ackedUIDs(a), []string{"u1"}) }, "handed off when ztunnel came")
}

func TestHandoffRejectedRollsBackRedirection(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(nsAmbient + podYAML("web", "u1", "", ""))
	z := newFakeZtunnel(e.j)
	z.reject = "cannot enter netns"
	a, _ := e.startAgent()
	e.startZtunnel(z)
	eventually(t, a.zds.Connected, "ztunnel connected")
	err := e.client().Add(ctxT(t), e.newPod("u1", "apps", "web", "10.20.1.5"))
	var se *podapi.StatusError
	if !errors.As(err, &se) || se.Code != 500 || !strings.Contains(se.Msg, "cannot enter netns") {
		t.Fatalf("add err = %v, want 500 with ztunnel's reason", err)
	}
	if e.redir.has("u1") {
		t.Fatal("redirection left without a proxy")
	}
}

func TestRedirectFailureIs500(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(nsAmbient + podYAML("web", "u1", "", ""))
	e.redir.failErr = errors.New("attach sk_lookup: permission denied")
	e.startAgent()
	err := e.client().Add(ctxT(t), e.newPod("u1", "apps", "web", "10.20.1.5"))
	var se *podapi.StatusError
	if !errors.As(err, &se) || se.Code != 500 || !strings.Contains(se.Msg, "permission denied") {
		t.Fatalf("add err = %v", err)
	}
}

func TestStateRecoveryAfterAgentRestart(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(nsAmbient + podYAML("web", "u1", "", "") + podYAML("gone", "u3", "", ""))
	z := newFakeZtunnel(e.j) // ztunnel survives the agent restart
	e.startZtunnel(z)
	_, stop := e.startAgent()
	c := e.client()
	gone := e.newPod("u3", "apps", "gone", "10.20.1.7")
	for _, req := range []podapi.AddRequest{e.newPod("u1", "apps", "web", "10.20.1.5"), gone} {
		if err := c.Add(ctxT(t), req); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	// While the agent is down: pod u3 goes away without a DEL, and pins appear for a pod
	// the agent never registered.
	if err := os.Remove(gone.Netns); err != nil {
		t.Fatal(err)
	}
	if _, err := e.redir.Enrol(PodNet{UID: "orphan"}); err != nil {
		t.Fatal(err)
	}
	enrolsBefore := e.redir.enrols

	a2, _ := e.startAgent()
	eventually(t, func() bool {
		got, _ := e.redir.Enrolled()
		return slices.Equal(got, []string{"u1"}) && slices.Equal(ztunnelUIDs(z), []string{"u1"}) && slices.Equal(ackedUIDs(a2), []string{"u1"})
	}, "recovered: u1 enrolled, orphan and gone pod cleaned")
	e.redir.mu.Lock()
	reEnrolled := e.redir.enrols > enrolsBefore
	e.redir.mu.Unlock()
	if !reEnrolled {
		t.Fatal("u1 not re-enrolled (idempotently) after restart")
	}
	data, err := os.ReadFile(filepath.Join(e.stateDir, stateFile))
	if err != nil || strings.Contains(string(data), "u3") || !strings.Contains(string(data), "u1") {
		t.Fatalf("state file after recovery: %s %v", data, err)
	}
}

func TestCorruptStateFailsStart(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(nsPlain)
	if err := os.MkdirAll(e.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.stateDir, stateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{ConfigDir: e.configDir, ZDSSocket: e.zdsSock, CNISocket: e.cniSock, CgroupRoot: e.cgroupRoot,
		StateDir: e.stateDir, Redirector: e.redir, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(ctxT(t)); err == nil || !strings.Contains(err.Error(), "load state") {
		t.Fatalf("run err = %v", err)
	}
}
