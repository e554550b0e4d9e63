// Package zds implements the node agent ⇄ ztunnel hand-off ("ZDS"), wire-compatible with
// Istio ambient (protobuf types istio.io/istio/pkg/zdsapi).
//
// Transport: a Unix SOCK_SEQPACKET socket; one protobuf message per packet. ztunnel
// (the Client) connects and sends ZdsHello{version: V1}. The node agent (the Server) then
// sends WorkloadRequest messages, each answered by a WorkloadResponse{ack} before the
// next one is sent; an empty Ack.error means success. On every (re)connect the server
// replays its whole state as AddWorkload messages followed by SnapshotSent, and the
// client drops every workload that was not re-added. Afterwards Add and Del flow live.
//
// AddWorkload carries file descriptors as SCM_RIGHTS ancillary data: the pod's network
// namespace first and, as an Ambit extension used when redirection is eBPF-based, the
// pod's SOCKMAP second. Istio's ztunnel sends exactly one fd; a second fd is only sent
// when the agent has one.
//
// A zero-length packet cannot be told from the peer closing the connection (Go reports
// both as EOF), so it ends the connection; no valid message encodes to zero bytes except
// a hello without version and a request without payload, both invalid anyway.
package zds

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/zdsapi"
)

// Sentinel errors callers branch on.
var (
	// ErrMalformed marks a message that does not decode or does not follow the protocol
	// (wrong fd count, empty payload, truncated packet).
	ErrMalformed = errors.New("malformed zds message")
	// ErrRejected marks a request the peer acknowledged with a non-empty error string.
	ErrRejected = errors.New("zds request rejected")
)

const (
	// maxMessage bounds one packet. Istio reads into 1024 bytes; names are bounded by
	// Kubernetes (≤253 bytes each), so real messages are far smaller.
	maxMessage = 4096
	// maxAckError bounds the error string a client puts in an Ack.
	maxAckError = 1024
	// ioTimeout bounds one read or write of a single message, as Istio's 5s deadline.
	ioTimeout = 5 * time.Second
	// maxFDs is the number of fds an AddWorkload may carry: netns and SOCKMAP.
	maxFDs = 2
)

// sendMsg marshals m and writes it as one packet with fds (may be nil) attached.
func sendMsg(c *net.UnixConn, m proto.Message, fds ...int) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := c.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	n, oobn, err := c.WriteMsgUnix(data, oob, nil)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n != len(data) || oobn != len(oob) {
		return fmt.Errorf("write: short write (%d/%d bytes, %d/%d oob)", n, len(data), oobn, len(oob))
	}
	return nil
}

// packet is one received datagram: payload bytes and the fds that came with it, already
// wrapped as files (the receiver owns them).
type packet struct {
	data  []byte
	files []*os.File
}

func (p *packet) closeFiles() {
	for _, f := range p.files {
		_ = f.Close()
	}
	p.files = nil
}

// recvMsg reads one packet. A zero deadline means no deadline. Received fds are wrapped
// into files even when the packet is rejected, then closed, so none leak.
func recvMsg(c *net.UnixConn, deadline time.Time) (*packet, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, fmt.Errorf("set read deadline: %w", err)
	}
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*(maxFDs+2)))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	p := &packet{data: buf[:n]}
	files, ferr := parseRights(oob[:oobn])
	p.files = files
	switch {
	case ferr != nil:
		p.closeFiles()
		return nil, ferr
	case flags&unix.MSG_TRUNC != 0:
		p.closeFiles()
		return nil, fmt.Errorf("%w: packet larger than %d bytes", ErrMalformed, maxMessage)
	case flags&unix.MSG_CTRUNC != 0:
		p.closeFiles()
		return nil, fmt.Errorf("%w: too many file descriptors", ErrMalformed)
	case n == 0:
		p.closeFiles()
		return nil, fmt.Errorf("read: %w", errEOF)
	}
	return p, nil
}

// errEOF is returned for a zero-length read, which on SOCK_SEQPACKET means the peer
// closed the connection.
var errEOF = errors.New("connection closed by peer")

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %v", ErrMalformed, err)
	}
	var files []*os.File
	var bad error
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			bad = fmt.Errorf("%w: control message: %v", ErrMalformed, err)
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "zds-fd"))
		}
	}
	if bad != nil {
		for _, f := range files {
			_ = f.Close()
		}
		return nil, bad
	}
	return files, nil
}

// decodeRequest decodes a WorkloadRequest and checks it against the number of fds that
// came with it: AddWorkload needs 1 (netns) or 2 (netns, SOCKMAP) and a uid; other
// requests carry none.
func decodeRequest(data []byte, nfds int) (*zdsapi.WorkloadRequest, error) {
	req := &zdsapi.WorkloadRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		return nil, fmt.Errorf("%w: decode request: %v", ErrMalformed, err)
	}
	switch p := req.GetPayload().(type) {
	case *zdsapi.WorkloadRequest_Add:
		if p.Add == nil || p.Add.GetUid() == "" {
			return nil, fmt.Errorf("%w: add without uid", ErrMalformed)
		}
		if nfds < 1 || nfds > maxFDs {
			return nil, fmt.Errorf("%w: add %s with %d fds, want netns (+ optional sockmap)", ErrMalformed, p.Add.GetUid(), nfds)
		}
		return req, nil
	case *zdsapi.WorkloadRequest_Keep:
		if p.Keep.GetUid() == "" {
			return nil, fmt.Errorf("%w: keep without uid", ErrMalformed)
		}
	case *zdsapi.WorkloadRequest_Del:
		if p.Del.GetUid() == "" {
			return nil, fmt.Errorf("%w: del without uid", ErrMalformed)
		}
	case *zdsapi.WorkloadRequest_SnapshotSent:
	default:
		return nil, fmt.Errorf("%w: request without payload", ErrMalformed)
	}
	if nfds != 0 {
		return nil, fmt.Errorf("%w: unexpected %d fds", ErrMalformed, nfds)
	}
	return req, nil
}

// decodeAck decodes a WorkloadResponse and returns its Ack. A response without an Ack is
// malformed.
func decodeAck(data []byte, nfds int) (*zdsapi.Ack, error) {
	resp := &zdsapi.WorkloadResponse{}
	if err := proto.Unmarshal(data, resp); err != nil {
		return nil, fmt.Errorf("%w: decode response: %v", ErrMalformed, err)
	}
	if nfds != 0 {
		return nil, fmt.Errorf("%w: response with %d fds", ErrMalformed, nfds)
	}
	ack := resp.GetAck()
	if ack == nil {
		return nil, fmt.Errorf("%w: response without ack", ErrMalformed)
	}
	return ack, nil
}

// decodeHello decodes the client's first message and requires version V1.
func decodeHello(data []byte, nfds int) (*zdsapi.ZdsHello, error) {
	h := &zdsapi.ZdsHello{}
	if err := proto.Unmarshal(data, h); err != nil {
		return nil, fmt.Errorf("%w: decode hello: %v", ErrMalformed, err)
	}
	if nfds != 0 {
		return nil, fmt.Errorf("%w: hello with %d fds", ErrMalformed, nfds)
	}
	if h.GetVersion() != zdsapi.Version_V1 {
		return nil, fmt.Errorf("%w: unsupported hello version %v", ErrMalformed, h.GetVersion())
	}
	return h, nil
}

// dupFile returns a close-on-exec duplicate of f, owned by the caller.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup fd: %w", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
