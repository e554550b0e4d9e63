package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopGrace is how long Process.Stop (and a cancelled start context) waits
// after SIGTERM before sending SIGKILL.
const StopGrace = 5 * time.Second

// Process is a program the cluster started in a namespace. The cluster's
// Close stops every Process it started.
type Process struct {
	// Pid is the process id (nsenter execs the program, so it is the program's pid).
	Pid int
	// LogPath is the file receiving stdout and stderr ("" when discarded).
	LogPath string
	// Argv is the program and its arguments, without the nsenter prefix.
	Argv []string

	cmd      *exec.Cmd
	done     chan struct{}
	err      error
	stopOnce sync.Once
}

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the process exited (nil for status 0, an *exec.ExitError
// otherwise); it is only meaningful after Done is closed.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Stop sends SIGTERM, waits up to StopGrace, then sends SIGKILL, and returns
// once the process is reaped. It is safe to call more than once and after
// the process exited. It returns an error only when the process cannot be
// signalled while still running.
func (p *Process) Stop() error {
	var err error
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		if sErr := p.cmd.Process.Signal(syscall.SIGTERM); sErr != nil && !errors.Is(sErr, os.ErrProcessDone) {
			err = fmt.Errorf("stop pid %d: %w", p.Pid, sErr)
		}
		t := time.NewTimer(StopGrace)
		defer t.Stop()
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return err
}

// String describes the process for logs: "pid 123 (ztunnel --node-name a)".
func (p *Process) String() string {
	return fmt.Sprintf("pid %d (%s)", p.Pid, strings.Join(p.Argv, " "))
}

// nsenterCmd builds `nsenter --net=<netnsPath> -- argv...`, with the
// lifecycle settings every cluster process shares: its own process group
// (a terminal Ctrl-C reaches only the harness, which then stops it in
// order), SIGKILL if the harness dies, and SIGTERM-then-SIGKILL when ctx ends.
func nsenterCmd(ctx context.Context, nsenter, netnsPath string, argv []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty argv")
	}
	args := append([]string{"--net=" + netnsPath, "--"}, argv...)
	cmd := exec.CommandContext(ctx, nsenter, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = StopGrace
	return cmd, nil
}

// startProcess starts cmd with stdout and stderr appended to logPath ("" discards them).
func startProcess(cmd *exec.Cmd, logPath string, argv []string) (*Process, error) {
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log: %w", err)
		}
		defer f.Close() // the child holds its own copy
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &Process{Pid: cmd.Process.Pid, LogPath: logPath, Argv: argv, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// runOutput runs cmd to completion and returns its stdout; on failure the
// error carries stderr (and the stdout is still returned).
func runOutput(cmd *exec.Cmd, argv []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("run %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
