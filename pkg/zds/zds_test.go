package zds

import (
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAddDeliversFDsAndInfo(t *testing.T) {
	path := socketPath(t)
	srv, _ := startServer(t, path)
	zt := newFakeZtunnel()
	t.Cleanup(zt.closeAll)
	startClient(t, path, zt)
	eventually(t, srv.Connected, "ztunnel connected")

	for _, tc := range []struct {
		name        string
		withSockMap bool
	}{{"netns only", false}, {"netns and sockmap", true}} {
		t.Run(tc.name, func(t *testing.T) {
			uid := strings.ReplaceAll(tc.name, " ", "-")
			wl, writer := pipeWorkload(t, uid, tc.withSockMap)
			if err := srv.Add(ctxTimeout(t, 5*time.Second), wl); err != nil {
				t.Fatalf("add: %v", err)
			}
			got := zt.get(uid)
			if got == nil {
				t.Fatalf("ztunnel has no workload %s after ack", uid)
			}
			if got.info.GetName() != "pod-"+uid || got.info.GetServiceAccount() != "sa" {
				t.Errorf("info = %v", got.info)
			}
			// The received netns fd is the same pipe: bytes written at our end come out.
			if _, err := writer.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(got.netns, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("read via passed fd: %q, %v", buf, err)
			}
			if (got.sockmap != nil) != tc.withSockMap {
				t.Errorf("sockmap passed = %v, want %v", got.sockmap != nil, tc.withSockMap)
			}
			if !srv.Acked(uid) {
				t.Error("Acked = false after ack")
			}
		})
	}
}

func TestAddWithoutZtunnelIsQueuedForSnapshot(t *testing.T) {
	path := socketPath(t)
	srv, _ := startServer(t, path)
	wl, _ := pipeWorkload(t, "a", true)
	// No ztunnel: Add returns at once (F-PLUS-3) and keeps the workload.
	if err := srv.Add(ctxTimeout(t, time.Second), wl); err != nil {
		t.Fatalf("add without ztunnel: %v", err)
	}
	if srv.Acked("a") {
		t.Fatal("acked without a ztunnel")
	}
	zt := newFakeZtunnel()
	t.Cleanup(zt.closeAll)
	startClient(t, path, zt)
	eventually(t, func() bool { return srv.Acked("a") }, "queued workload acked after connect")
	eventually(t, func() bool { return zt.eventCount("reconcile") == 1 }, "snapshot end")
	if got := zt.uids(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("ztunnel workloads = %v", got)
	}
}

func TestSnapshotReplayAfterZtunnelRestart(t *testing.T) {
	path := socketPath(t)
	srv, _ := startServer(t, path)
	zt1 := newFakeZtunnel()
	t.Cleanup(zt1.closeAll)
	stop1 := startClient(t, path, zt1)
	eventually(t, srv.Connected, "ztunnel connected")
	for _, uid := range []string{"a", "b"} {
		wl, _ := pipeWorkload(t, uid, false)
		if err := srv.Add(ctxTimeout(t, 5*time.Second), wl); err != nil {
			t.Fatal(err)
		}
	}
	stop1() // ztunnel dies
	eventually(t, func() bool { return !srv.Connected() }, "disconnect noticed")
	if err := srv.Del(ctxTimeout(t, time.Second), "b"); err != nil {
		t.Fatalf("del while disconnected: %v", err)
	}
	wl, _ := pipeWorkload(t, "c", false)
	if err := srv.Add(ctxTimeout(t, time.Second), wl); err != nil {
		t.Fatal(err)
	}

	zt2 := newFakeZtunnel() // a fresh ztunnel process: empty state
	t.Cleanup(zt2.closeAll)
	startClient(t, path, zt2)
	eventually(t, func() bool { return zt2.eventCount("reconcile") == 1 }, "snapshot replayed")
	if got := zt2.uids(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("replayed workloads = %v, want [a c]", got)
	}
	if !srv.Acked("a") || !srv.Acked("c") {
		t.Fatal("replayed workloads not acked")
	}
}

func TestAgentRestartReconcileRemovesGoneWorkloads(t *testing.T) {
	path := socketPath(t)
	srv1, stopSrv1 := startServer(t, path)
	zt := newFakeZtunnel() // survives the agent restart, like ztunnel does
	t.Cleanup(zt.closeAll)
	startClient(t, path, zt)
	eventually(t, srv1.Connected, "ztunnel connected")
	for _, uid := range []string{"a", "b"} {
		wl, _ := pipeWorkload(t, uid, false)
		if err := srv1.Add(ctxTimeout(t, 5*time.Second), wl); err != nil {
			t.Fatal(err)
		}
	}
	stopSrv1()

	srv2, _ := startServer(t, path) // the agent comes back knowing only "a"
	wl, _ := pipeWorkload(t, "a", false)
	if err := srv2.Add(ctxTimeout(t, 5*time.Second), wl); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return zt.eventCount("reconcile") == 2 }, "second snapshot")
	if got := zt.uids(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("ztunnel workloads after reconcile = %v, want [a]", got)
	}
}

func TestLiveDel(t *testing.T) {
	path := socketPath(t)
	srv, _ := startServer(t, path)
	zt := newFakeZtunnel()
	t.Cleanup(zt.closeAll)
	startClient(t, path, zt)
	eventually(t, srv.Connected, "ztunnel connected")
	wl, _ := pipeWorkload(t, "a", false)
	if err := srv.Add(ctxTimeout(t, 5*time.Second), wl); err != nil {
		t.Fatal(err)
	}
	if err := srv.Del(ctxTimeout(t, 5*time.Second), "a"); err != nil {
		t.Fatal(err)
	}
	if got := zt.uids(); len(got) != 0 {
		t.Fatalf("workloads after del = %v", got)
	}
	if err := srv.Del(ctxTimeout(t, time.Second), "unknown"); err != nil {
		t.Fatalf("del unknown: %v", err)
	}
	if got := srv.UIDs(); len(got) != 0 {
		t.Fatalf("server still has %v", got)
	}
}

func TestAckWithError(t *testing.T) {
	path := socketPath(t)
	srv, _ := startServer(t, path)
	zt := newFakeZtunnel()
	zt.rejectAdd = "no such netns"
	startClient(t, path, zt)
	eventually(t, srv.Connected, "ztunnel connected")
	wl, _ := pipeWorkload(t, "a", false)
	err := srv.Add(ctxTimeout(t, 5*time.Second), wl)
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "no such netns") {
		t.Fatalf("add err = %v, want ErrRejected with the ztunnel message", err)
	}
	if srv.Acked("a") {
		t.Fatal("rejected workload reported acked")
	}
}

func TestNewConnectionReplacesOld(t *testing.T) {
	path := socketPath(t)
	srv, _ := startServer(t, path)
	wl, _ := pipeWorkload(t, "a", false)
	if err := srv.Add(ctxTimeout(t, time.Second), wl); err != nil {
		t.Fatal(err)
	}
	old := rawDial(t, path)
	sendHello(t, old)
	old.read(t) // Add a
	old.ack(t, "")
	old.read(t) // SnapshotSent
	old.ack(t, "")

	zt := newFakeZtunnel() // e.g. the new pod of a rolling update
	t.Cleanup(zt.closeAll)
	startClient(t, path, zt)
	if err := old.readEOF(t); err != nil {
		t.Fatalf("old connection: %v", err)
	}
	eventually(t, func() bool { return zt.eventCount("reconcile") == 1 }, "snapshot to new ztunnel")
	wlb, _ := pipeWorkload(t, "b", false)
	if err := srv.Add(ctxTimeout(t, 5*time.Second), wlb); err != nil {
		t.Fatal(err)
	}
	if got := zt.uids(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("new ztunnel workloads = %v", got)
	}
}

func TestAddWaitIsBoundedByContext(t *testing.T) {
	path := socketPath(t)
	srv, _ := startServer(t, path)
	conn := rawDial(t, path)
	sendHello(t, conn)
	eventually(t, srv.Connected, "raw client connected")
	// The raw client receives SnapshotSent and never acks anything.
	wl, _ := pipeWorkload(t, "a", false)
	start := time.Now()
	err := srv.Add(ctxTimeout(t, 200*time.Millisecond), wl)
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Fatalf("add err = %v, want deadline", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("add blocked past its context")
	}
	if got := srv.UIDs(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("timed-out workload not kept for replay: %v", got)
	}
}

func TestServerDropsMalformedPeers(t *testing.T) {
	cases := []struct {
		name string
		send func(t *testing.T, c rawConn)
	}{
		{"garbage hello", func(t *testing.T, c rawConn) { c.write(t, []byte{0xff, 0xff, 0xff}) }},
		{"hello version 0", func(t *testing.T, c rawConn) { c.write(t, []byte{}) }},
		{"garbage ack", func(t *testing.T, c rawConn) {
			sendHello(t, c)
			c.read(t) // SnapshotSent
			c.write(t, []byte{0x0a, 0x05, 0x01})
		}},
		{"response without ack", func(t *testing.T, c rawConn) {
			sendHello(t, c)
			c.read(t)
			c.write(t, []byte{0x12, 0x00}) // unknown field 2, no ack
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := socketPath(t)
			srv, _ := startServer(t, path)
			c := rawDial(t, path)
			tc.send(t, c)
			// The server closes the connection: the next read sees EOF, not a hang.
			if err := c.readEOF(t); err != nil {
				t.Fatal(err)
			}
			eventually(t, func() bool { return !srv.Connected() }, "server forgot the bad peer")
			wl, _ := pipeWorkload(t, "a", false)
			if err := srv.Add(ctxTimeout(t, time.Second), wl); err != nil {
				t.Fatalf("add after bad peer: %v", err)
			}
		})
	}
}

func TestWorkloadFDsStayValidAfterCallerCloses(t *testing.T) {
	path := socketPath(t)
	srv, _ := startServer(t, path)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := srv.Add(ctxTimeout(t, time.Second), Workload{UID: "a", Netns: r}); err != nil {
		t.Fatal(err)
	}
	_ = r.Close() // the server holds its own duplicate
	zt := newFakeZtunnel()
	t.Cleanup(zt.closeAll)
	startClient(t, path, zt)
	eventually(t, func() bool { return srv.Acked("a") }, "replayed")
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := zt.get("a").netns.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("read via replayed fd: %v", err)
	}
}

func TestAddRequiresNetns(t *testing.T) {
	srv := NewServer(socketPath(t), nil)
	if err := srv.Add(ctxTimeout(t, time.Second), Workload{UID: "a"}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
}
