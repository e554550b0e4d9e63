package zds

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/zdsapi"
)

// rawConn speaks ZDS by hand, to play a misbehaving peer.
type rawConn struct{ *net.UnixConn }

func rawDial(t *testing.T, path string) rawConn {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return rawConn{c}
}

func (c rawConn) write(t *testing.T, data []byte, fds ...int) {
	t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix(data, oob, nil); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

func (c rawConn) writeMsg(t *testing.T, m proto.Message, fds ...int) {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	c.write(t, data, fds...)
}

// read returns the next packet's bytes; fds that came with it are closed.
func (c rawConn) read(t *testing.T) []byte {
	t.Helper()
	p, err := recvMsg(c.UnixConn, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("raw read: %v", err)
	}
	p.closeFiles()
	return p.data
}

func (c rawConn) readAck(t *testing.T) *zdsapi.Ack {
	t.Helper()
	ack, err := decodeAck(c.read(t), 0)
	if err != nil {
		t.Fatalf("decode ack: %v", err)
	}
	return ack
}

func (c rawConn) ack(t *testing.T, msg string) {
	t.Helper()
	c.writeMsg(t, &zdsapi.WorkloadResponse{Payload: &zdsapi.WorkloadResponse_Ack{Ack: &zdsapi.Ack{Error: msg}}})
}

// readEOF waits for the peer to close the connection.
func (c rawConn) readEOF(t *testing.T) error {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := recvMsg(c.UnixConn, deadline)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("no EOF: %w", err)
			}
			return nil // EOF or reset: closed
		}
		p.closeFiles() // e.g. a SnapshotSent still in flight
	}
}

func sendHello(t *testing.T, c rawConn) {
	t.Helper()
	c.writeMsg(t, &zdsapi.ZdsHello{Version: zdsapi.Version_V1})
}

// rawAgent listens like the node agent and returns the first ztunnel connection after
// its hello.
func rawAgent(t *testing.T, path string) func() rawConn {
	t.Helper()
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return func() rawConn {
		t.Helper()
		_ = l.SetDeadline(time.Now().Add(5 * time.Second))
		c, err := l.AcceptUnix()
		if err != nil {
			t.Fatalf("accept: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		rc := rawConn{c}
		if _, err := decodeHello(rc.read(t), 0); err != nil {
			t.Fatalf("hello: %v", err)
		}
		return rc
	}
}

func TestClientAcksMalformedRequestsWithError(t *testing.T) {
	path := socketPath(t)
	accept := rawAgent(t, path)
	zt := newFakeZtunnel()
	t.Cleanup(zt.closeAll)
	startClient(t, path, zt)
	c := accept()

	devnull := func() int {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		return int(f.Fd())
	}
	add := &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_Add{Add: &zdsapi.AddWorkload{Uid: "a"}}}
	cases := []struct {
		name    string
		send    func()
		wantErr string
	}{
		{"not protobuf", func() { c.write(t, []byte{0xff, 0xff}) }, "decode request"},
		{"request without payload", func() { c.write(t, []byte{0x22, 0x00}) }, "without payload"}, // unknown field 4
		{"add without fd", func() { c.writeMsg(t, add) }, "0 fds"},
		{"add with three fds", func() { c.writeMsg(t, add, devnull(), devnull(), devnull()) }, "3 fds"},
		{"add without uid", func() {
			c.writeMsg(t, &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_Add{Add: &zdsapi.AddWorkload{}}}, devnull())
		}, "without uid"},
		{"del with fd", func() {
			c.writeMsg(t, &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_Del{Del: &zdsapi.DelWorkload{Uid: "a"}}}, devnull())
		}, "unexpected 1 fds"},
		{"oversized packet", func() { c.write(t, make([]byte, maxMessage+10)) }, "larger than"},
		{"valid add still works", func() { c.writeMsg(t, add, devnull()) }, ""},
		{"keep after snapshot", func() {
			c.writeMsg(t, &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_SnapshotSent{SnapshotSent: &zdsapi.SnapshotSent{}}})
			if a := c.readAck(t); a.GetError() != "" {
				t.Fatalf("snapshot ack: %s", a.GetError())
			}
			c.writeMsg(t, &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_Keep{Keep: &zdsapi.KeepWorkload{Uid: "a"}}})
		}, "after snapshot"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.send()
			got := c.readAck(t).GetError()
			if tc.wantErr == "" && got != "" || !strings.Contains(got, tc.wantErr) {
				t.Fatalf("ack error = %q, want containing %q", got, tc.wantErr)
			}
		})
	}
	if zt.eventCount("add a") != 1 {
		t.Fatalf("handler saw %d adds, want only the valid one", zt.eventCount("add a"))
	}
	if zt.get("a") == nil {
		t.Fatal("valid add not applied")
	}
}

func TestClientReconnectsWhenAgentRestarts(t *testing.T) {
	path := socketPath(t)
	zt := newFakeZtunnel()
	t.Cleanup(zt.closeAll)
	startClient(t, path, zt) // agent not there yet: the client retries
	for i := range 2 {
		srv, stop := startServer(t, path)
		eventually(t, srv.Connected, fmt.Sprintf("connection %d", i))
		eventually(t, func() bool { return zt.eventCount("reconcile") == i+1 }, "snapshot")
		stop()
		_ = srv.Close()
	}
}
