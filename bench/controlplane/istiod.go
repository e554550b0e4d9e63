package controlplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
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

// memory returns istiod-lite's VmRSS and VmHWM in bytes.
func (d *istiod) memory() (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read istiod-lite memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("read istiod-lite memory: %s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm, sc.Err()
}

// cpuSeconds returns istiod-lite's user+system CPU time so far.
func (d *istiod) cpuSeconds() (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read istiod-lite cpu: %w", err)
	}
	// Fields after the parenthesised command name; utime and stime are fields 14, 15.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("read istiod-lite cpu: short stat line")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("read istiod-lite cpu: %w", err)
	}
	return float64(ut+st) / 100, nil // USER_HZ is 100 on Linux
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
