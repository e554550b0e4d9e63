package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/ambitmesh/ambit/bench/measure"
)

// istiod is an istiod-lite process with fixed loopback ports.
type istiod struct {
	bin, dir         string
	sourceArgs       []string
	xdsAddr, monAddr string
	tlsAddr          string
	cmd              *exec.Cmd
	exited           chan struct{}
	starts           int
}

func newIstiod(bin, dir string, sourceArgs []string) (*istiod, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	return &istiod{
		bin: bin, dir: dir, sourceArgs: sourceArgs,
		xdsAddr: "127.0.0.1:" + strconv.Itoa(ports[0]),
		tlsAddr: "127.0.0.1:" + strconv.Itoa(ports[1]),
		monAddr: "127.0.0.1:" + strconv.Itoa(ports[2]),
	}, nil
}

// start runs istiod-lite and waits until it is ready (its first snapshot applied and
// xDS listening).
func (d *istiod) start(ctx context.Context) error {
	d.starts++
	logf, err := os.Create(filepath.Join(d.dir, fmt.Sprintf("istiod-lite.%d.log", d.starts)))
	if err != nil {
		return fmt.Errorf("start istiod-lite: %w", err)
	}
	args := append([]string{
		"--ca-dir", filepath.Join(d.dir, "ca"),
		"--grpc-addr", d.tlsAddr, "--grpc-plaintext-addr", d.xdsAddr, "--monitoring-addr", d.monAddr,
	}, d.sourceArgs...)
	d.cmd = exec.Command(d.bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start istiod-lite: %w", err)
	}
	d.exited = make(chan struct{})
	go func() {
		d.cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	return d.waitReady(ctx)
}

func (d *istiod) waitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get("http://" + d.monAddr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if c, err := net.Dial("tcp", d.xdsAddr); err == nil {
					c.Close()
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for istiod-lite: %w", ctx.Err())
		case <-d.exited:
			return errors.New("istiod-lite exited before it was ready (see its log in the work dir)")
		case <-tick.C:
		}
	}
}

// kill stops istiod-lite at once (SIGKILL, as a crashed or evicted pod) and waits.
func (d *istiod) kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
}

// usage reads istiod-lite's CPU time and memory.
func (d *istiod) usage() (measure.ProcSample, error) {
	return measure.ReadProc(d.cmd.Process.Pid)
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick port: %w", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// cpuProfile saves istiod-lite's CPU profile over the next d as istiod-churn.pprof in
// its work dir.
func (d *istiod) cpuProfile(ctx context.Context, dur time.Duration) error {
	return measure.SaveCPUProfile(ctx, nil, "http://"+d.monAddr, dur, filepath.Join(d.dir, "istiod-churn.pprof"))
}
