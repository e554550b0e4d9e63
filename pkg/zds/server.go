package zds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"istio.io/istio/pkg/zdsapi"
)

// Workload is one enrolled pod as the node agent hands it to ztunnel.
type Workload struct {
	// UID is the pod UID, the key of every later message.
	UID string
	// Info carries the pod name, namespace and service account (may be nil).
	Info *zdsapi.WorkloadInfo
	// Netns is an open handle on the pod's network namespace (e.g. /proc/<pid>/ns/net
	// or /var/run/netns/<name>). Required.
	Netns *os.File
	// SockMap is the pod's redirection SOCKMAP (Ambit extension); nil when redirection
	// does not use one.
	SockMap *os.File
}

// Server is the node agent side of ZDS: it listens on a Unix SOCK_SEQPACKET socket, serves
// one ztunnel connection at a time (a new connection replaces the old one) and keeps
// the set of current workloads, with its own duplicates of their fds, so it can replay
// them to every new connection (as Istio's node agent: Add per workload, then
// SnapshotSent).
type Server struct {
	path string
	log  *slog.Logger

	mu        sync.Mutex
	seq       uint64
	workloads map[string]*entry
	cur       *session // the connection requests go to; nil when none
}

// entry is the server's copy of a workload; it owns netns and sockmap.
type entry struct {
	uid     string
	info    *zdsapi.WorkloadInfo
	netns   *os.File
	sockmap *os.File
	seq     uint64
	acked   bool // acknowledged by the current session
}

func (e *entry) close() {
	_ = e.netns.Close()
	if e.sockmap != nil {
		_ = e.sockmap.Close()
	}
}

// op is a live Add or Del waiting to be sent on a session.
type op struct {
	del  bool
	uid  string
	done chan error // buffered; receives exactly one result
}

func (o *op) finish(err error) { o.done <- err }

// NewServer returns a server that will listen on path (see wire.ZDSSocketPath). logger may
// be nil (slog.Default()).
func NewServer(path string, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{path: path, log: logger, workloads: map[string]*entry{}}
}

// Run listens on the socket path (replacing a stale socket file) and serves ztunnel
// connections until ctx ends. It returns an error only when listening fails; the socket
// file is removed on return. Workloads stay registered after Run returns (see Close).
func (s *Server) Run(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("zds listen: %w", err)
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("zds listen: remove stale socket: %w", err)
	}
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: s.path, Net: "unixpacket"})
	if err != nil {
		return fmt.Errorf("zds listen: %w", err)
	}
	l.SetUnlinkOnClose(true)
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	defer l.Close()
	s.log.Info("zds server listening", "path", s.path)

	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("zds accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serve(ctx, c)
		}()
	}
}

// Add registers w (replacing a workload with the same UID) and, when a ztunnel is
// connected, waits until it acknowledges the AddWorkload. With no ztunnel connected it
// returns nil at once: the workload is queued for the next connection's snapshot
// (F-PLUS-3: pod start never waits on ztunnel). The wait is bounded by ctx; on timeout
// the workload stays registered and is still delivered later. A ztunnel that answers
// with an error yields an error wrapping ErrRejected; the workload stays registered
// until Del. The server duplicates w's fds; the caller keeps ownership of its own.
func (s *Server) Add(ctx context.Context, w Workload) error {
	if w.UID == "" || w.Netns == nil {
		return fmt.Errorf("zds add: %w: uid and netns are required", ErrMalformed)
	}
	e := &entry{uid: w.UID, info: w.Info}
	var err error
	if e.netns, err = dupFile(w.Netns); err != nil {
		return fmt.Errorf("zds add %s: %w", w.UID, err)
	}
	if w.SockMap != nil {
		if e.sockmap, err = dupFile(w.SockMap); err != nil {
			_ = e.netns.Close()
			return fmt.Errorf("zds add %s: %w", w.UID, err)
		}
	}
	s.mu.Lock()
	if old := s.workloads[w.UID]; old != nil {
		old.close()
	}
	s.seq++
	e.seq = s.seq
	s.workloads[w.UID] = e
	o := s.enqueueLocked(false, w.UID)
	s.mu.Unlock()
	return s.wait(ctx, o, "add", w.UID)
}

// Del forgets the workload and, when a ztunnel is connected, sends DelWorkload and waits
// for its acknowledgement (bounded by ctx). Unknown UIDs and a disconnected ztunnel are
// not errors: the next snapshot will not contain the workload.
func (s *Server) Del(ctx context.Context, uid string) error {
	s.mu.Lock()
	e := s.workloads[uid]
	if e == nil {
		s.mu.Unlock()
		return nil
	}
	e.close()
	delete(s.workloads, uid)
	o := s.enqueueLocked(true, uid)
	s.mu.Unlock()
	return s.wait(ctx, o, "del", uid)
}

// Acked reports whether the currently connected ztunnel has acknowledged the workload
// (the moment Istio marks a pod ambient.istio.io/redirection=enabled).
func (s *Server) Acked(uid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.workloads[uid]
	return e != nil && e.acked && s.cur != nil
}

// Connected reports whether a ztunnel is connected and has said hello.
func (s *Server) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil && s.cur.hello
}

// UIDs returns the registered workload UIDs, sorted.
func (s *Server) UIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.workloads))
	for uid := range s.workloads {
		out = append(out, uid)
	}
	sort.Strings(out)
	return out
}

// Close releases the fds of every registered workload and forgets them. Call it after
// Run has returned.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, e := range s.workloads {
		e.close()
		delete(s.workloads, uid)
	}
	return nil
}

// enqueueLocked queues a live op on the current session; with none it returns nil.
func (s *Server) enqueueLocked(del bool, uid string) *op {
	if s.cur == nil {
		return nil
	}
	o := &op{del: del, uid: uid, done: make(chan error, 1)}
	s.cur.queue = append(s.cur.queue, o)
	s.cur.wakeUp()
	return o
}

func (s *Server) wait(ctx context.Context, o *op, what, uid string) error {
	if o == nil {
		return nil
	}
	select {
	case err := <-o.done:
		if err != nil {
			return fmt.Errorf("zds %s %s: %w", what, uid, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zds %s %s: wait for ack: %w", what, uid, ctx.Err())
	}
}

// snapshotLocked returns duplicates of every workload, oldest first, for a replay.
func (s *Server) snapshotLocked() []*entry {
	out := make([]*entry, 0, len(s.workloads))
	for _, e := range s.workloads {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}
