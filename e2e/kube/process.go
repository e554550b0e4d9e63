package kube

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long stop waits after SIGTERM before it sends SIGKILL.
const stopGrace = 10 * time.Second

// process is one control-plane child of the test process. Its stdout and stderr go to
// logFile. done is closed once the process has been reaped; err then says how it ended.
type process struct {
	name    string
	cmd     *exec.Cmd
	logFile string
	done    chan struct{}
	err     error
}

// spawner starts child processes from one goroutine locked to its OS thread, so that
// the children's parent-death signal (SIGKILL, set with Pdeathsig) fires only when that
// thread ends: when Close releases it after stopping the children, or when the test
// process dies without cleaning up. Linux ties Pdeathsig to the creating thread, and
// the Go runtime may end ordinary threads, hence the dedicated one.
type spawner struct {
	reqs chan spawnReq
	done chan struct{}
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

// newSpawner starts the spawner's goroutine; close ends it.
func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		runtime.LockOSThread()
		// The thread is not unlocked: the runtime then ends it with the goroutine,
		// which is the moment any child still running must die.
		for r := range s.reqs {
			r.reply <- r.cmd.Start()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, reply: make(chan error, 1)}
	s.reqs <- r
	return <-r.reply
}

// close ends the spawner goroutine and waits for it; call it after every child is reaped.
func (s *spawner) close() {
	close(s.reqs)
	<-s.done
}

// startProcess runs bin with args as a child in its own process group, with stdout and
// stderr appended to logDir/<name>.log.
func startProcess(sp *spawner, logDir, name, bin string, args []string) (*process, error) {
	logFile := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sp.start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited returns an error naming the process and the tail of its log when it has
// already ended, nil while it runs.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v): %s", p.name, p.err, p.logTail(2048))
	default:
		return nil
	}
}

// stop sends SIGTERM, waits up to stopGrace, then SIGKILL, and returns once the process
// has been reaped. An exit caused by those signals is not an error.
func (p *process) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.done
	return nil
}

// logTail returns up to n bytes from the end of the process's log, trimmed.
func (p *process) logTail(n int64) string {
	f, err := os.Open(p.logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	return strings.TrimSpace(string(buf))
}
