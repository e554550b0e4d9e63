package zds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"istio.io/istio/pkg/zdsapi"
)

// session is one ztunnel connection on the server side. Its serve goroutine is the only
// writer; a reader goroutine turns incoming packets into ackResults.
type session struct {
	conn  *net.UnixConn
	hello bool
	queue []*op         // guarded by Server.mu
	wake  chan struct{} // capacity 1: "queue may be non-empty"
	acks  chan ackResult
}

type ackResult struct {
	ack *zdsapi.Ack
	err error
}

func (ss *session) wakeUp() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// serve runs one connection: hello, attach (replacing the previous connection), snapshot
// replay, then live ops until the connection or ctx ends.
func (s *Server) serve(ctx context.Context, c *net.UnixConn) {
	ss := &session{conn: c, wake: make(chan struct{}, 1), acks: make(chan ackResult)}
	stopped := make(chan struct{})
	var reader sync.WaitGroup
	defer s.detach(ss)
	defer reader.Wait()
	defer c.Close()
	defer close(stopped)
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()

	p, err := recvMsg(c, time.Now().Add(ioTimeout))
	if err != nil {
		s.log.Warn("zds: no hello from ztunnel", "err", err)
		return
	}
	hello, err := decodeHello(p.data, len(p.files))
	p.closeFiles()
	if err != nil {
		s.log.Warn("zds: bad hello from ztunnel", "err", err)
		return
	}
	s.log.Info("zds: ztunnel connected", "version", hello.GetVersion().String())
	uids := s.attach(ss)

	reader.Add(1)
	go func() {
		defer reader.Done()
		ss.readAcks(stopped)
	}()

	if err := s.replay(ctx, ss, uids); err != nil {
		s.log.Warn("zds: snapshot replay failed", "err", err)
		return
	}
	for {
		o, err := s.next(ctx, ss)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Info("zds: ztunnel connection ended", "err", err)
			}
			return
		}
		if err := s.process(ctx, ss, o); err != nil {
			s.requeue(ss, o)
			s.log.Warn("zds: ztunnel connection failed", "err", err)
			return
		}
	}
}

// attach makes ss the current session, closing the previous one and taking over its
// pending ops, and returns the UIDs to replay, oldest first.
func (s *Server) attach(ss *session) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.hello = true
	if old := s.cur; old != nil {
		ss.queue = append(ss.queue, old.queue...)
		old.queue = nil
		_ = old.conn.Close()
	}
	for _, e := range s.workloads {
		e.acked = false
	}
	s.cur = ss
	if len(ss.queue) > 0 {
		ss.wakeUp()
	}
	entries := s.snapshotLocked()
	uids := make([]string, len(entries))
	for i, e := range entries {
		uids[i] = e.uid
	}
	return uids
}

// detach forgets ss if it is still current; its pending ops complete with nil because
// their effect is carried by the next connection's snapshot.
func (s *Server) detach(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != ss {
		return
	}
	s.cur = nil
	for _, o := range ss.queue {
		o.finish(nil)
	}
	ss.queue = nil
}

// requeue puts an op whose send failed back at the head of the current session's queue.
func (s *Server) requeue(ss *session, o *op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.cur == ss:
		ss.queue = append([]*op{o}, ss.queue...)
	case s.cur != nil:
		s.cur.queue = append([]*op{o}, s.cur.queue...)
		s.cur.wakeUp()
	default:
		o.finish(nil)
	}
}

func (s *Server) replay(ctx context.Context, ss *session, uids []string) error {
	for _, uid := range uids {
		rejected, err := s.sendAdd(ctx, ss, uid)
		if err != nil {
			return err
		}
		if rejected != nil {
			s.log.Warn("zds: ztunnel rejected workload in snapshot", "uid", uid, "err", rejected)
		}
	}
	req := &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_SnapshotSent{SnapshotSent: &zdsapi.SnapshotSent{}}}
	rejected, err := ss.roundTrip(ctx, req)
	if err != nil {
		return fmt.Errorf("snapshot sent: %w", err)
	}
	if rejected != nil {
		s.log.Warn("zds: ztunnel rejected snapshot end", "err", rejected)
	}
	s.log.Info("zds: snapshot replayed", "workloads", len(uids))
	return nil
}

// next pops the next live op, waiting for one. It fails when ctx ends or the connection
// reports anything while idle (closure or an unsolicited message).
func (s *Server) next(ctx context.Context, ss *session) (*op, error) {
	for {
		s.mu.Lock()
		if len(ss.queue) > 0 {
			o := ss.queue[0]
			ss.queue = ss.queue[1:]
			s.mu.Unlock()
			return o, nil
		}
		s.mu.Unlock()
		select {
		case <-ss.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case r := <-ss.acks:
			if r.err != nil {
				return nil, r.err
			}
			return nil, fmt.Errorf("%w: unsolicited ack", ErrMalformed)
		}
	}
}

// process sends one live op. A rejection completes the op with an ErrRejected error; a
// connection failure is returned (the op is not completed).
func (s *Server) process(ctx context.Context, ss *session, o *op) error {
	if o.del {
		req := &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_Del{Del: &zdsapi.DelWorkload{Uid: o.uid}}}
		rejected, err := ss.roundTrip(ctx, req)
		if err != nil {
			return err
		}
		o.finish(rejected)
		return nil
	}
	s.mu.Lock()
	e := s.workloads[o.uid]
	done := e == nil || e.acked
	s.mu.Unlock()
	if done { // deleted since, or already delivered by the snapshot
		o.finish(nil)
		return nil
	}
	rejected, err := s.sendAdd(ctx, ss, o.uid)
	if err != nil {
		return err
	}
	o.finish(rejected)
	return nil
}

// sendAdd sends the current entry for uid (nothing if it is gone) with duplicates of its
// fds, and marks it acknowledged on success.
func (s *Server) sendAdd(ctx context.Context, ss *session, uid string) (rejected, err error) {
	s.mu.Lock()
	e := s.workloads[uid]
	if e == nil {
		s.mu.Unlock()
		return nil, nil
	}
	var files []*os.File
	f, err := dupFile(e.netns)
	if err == nil {
		files = append(files, f)
		if e.sockmap != nil {
			if f, err = dupFile(e.sockmap); err == nil {
				files = append(files, f)
			}
		}
	}
	info := e.info
	s.mu.Unlock()
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRejected, err), nil
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	req := &zdsapi.WorkloadRequest{Payload: &zdsapi.WorkloadRequest_Add{Add: &zdsapi.AddWorkload{Uid: uid, WorkloadInfo: info}}}
	rejected, err = ss.roundTrip(ctx, req, fds...)
	if err != nil || rejected != nil {
		return rejected, err
	}
	s.mu.Lock()
	if s.workloads[uid] == e && s.cur == ss {
		e.acked = true
	}
	s.mu.Unlock()
	return nil, nil
}

// roundTrip sends one request and waits for its ack. rejected is non-nil when the ack
// carries an error; err is non-nil when the connection failed or misbehaved.
func (ss *session) roundTrip(ctx context.Context, req *zdsapi.WorkloadRequest, fds ...int) (rejected, err error) {
	select {
	case r := <-ss.acks: // anything pending now was not asked for
		if r.err != nil {
			return nil, r.err
		}
		return nil, fmt.Errorf("%w: unsolicited ack", ErrMalformed)
	default:
	}
	if err := sendMsg(ss.conn, req, fds...); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	timer := time.NewTimer(ioTimeout)
	defer timer.Stop()
	select {
	case r := <-ss.acks:
		if r.err != nil {
			return nil, r.err
		}
		if msg := r.ack.GetError(); msg != "" {
			return fmt.Errorf("%w: %s", ErrRejected, msg), nil
		}
		return nil, nil
	case <-timer.C:
		return nil, errors.New("wait for ack: timed out")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readAcks reads responses until the connection fails, handing each to the writer.
func (ss *session) readAcks(stopped <-chan struct{}) {
	for {
		var r ackResult
		p, err := recvMsg(ss.conn, time.Time{})
		if err != nil {
			r.err = fmt.Errorf("read ack: %w", err)
		} else {
			r.ack, r.err = decodeAck(p.data, len(p.files))
			p.closeFiles()
		}
		select {
		case ss.acks <- r:
		case <-stopped:
			return
		}
		if r.err != nil {
			return
		}
	}
}
