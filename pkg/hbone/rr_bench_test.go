package hbone

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rrSize is the request and the response size of the request/response benchmarks:
// 1 KiB, the fortio payload of performance.md's latency runs.
const rrSize = 1 << 10

// rrRate is the paced benchmark's exchanges per second, all connections together
// (performance.md: 1000 req/s).
const rrRate = 1000

// BenchmarkRequestResponse measures small exchanges through a path, everything in this
// process, closed loop: each of 1 or 4 app connections writes 1 KiB and waits for the
// 1 KiB echo. Modes: hbone (client → HBONE → server → echo), plain-tls (performance.md's
// plain-tls forwarder pair), direct (app → echo, the floor to subtract). ns/op is per
// exchange, all connections together; cpu-us/req is this process's CPU (getrusage,
// user+system) per exchange, app and echo included; allocs/op include them too.
func BenchmarkRequestResponse(b *testing.B) {
	for _, mode := range []string{"hbone", "plain-tls", "direct"} {
		for _, streams := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/streams=%d", mode, streams), func(b *testing.B) {
				p := startRRPath(b, mode, false)
				conns := dialRR(b, p.front, streams)
				exchange(b, conns, 4*streams, 0) // connections and pools up
				b.ReportAllocs()
				before := selfCPU()
				b.ResetTimer()
				lat := exchange(b, conns, b.N, 0)
				b.StopTimer()
				reportRR(b, lat, selfCPU()-before)
			})
		}
	}
}

// BenchmarkRequestResponsePaced is the footprint instrument of performance.md's latency
// run: 1000 exchanges/s (1 KiB each way) spread uniformly over 1 or 4 connections, no
// catch-up, with each proxy in its own child process, as two ztunnels are two
// processes. proxy-cpu-us/req is both proxies' CPU per exchange (client-cpu-us/req and
// server-cpu-us/req apart, from their process CPU clocks), cores the same at 1000 req/s,
// ctxsw/req their context switches per exchange, anon-KiB the larger RssAnon of the two
// at the end; p50-us and p99-us are the exchange times seen by the app. ns/op is the
// pacing, not a cost. Knobs for the children: AMBIT_HBONE_BENCH_PROFILE=/tmp/rr writes
// CPU profiles to /tmp/rr.<role>.pprof, AMBIT_HBONE_BENCH_PROCS sets GOMAXPROCS,
// AMBIT_HBONE_BENCH_AGE_MB churns that much heap first (as a long-running process has).
func BenchmarkRequestResponsePaced(b *testing.B) {
	for _, mode := range []string{"hbone", "plain-tls"} {
		for _, streams := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/streams=%d", mode, streams), func(b *testing.B) {
				p := startRRPath(b, mode, true)
				conns := dialRR(b, p.front, streams)
				exchange(b, conns, 50*streams, rrRate)
				c0, s0 := procCPU(b, p.client), procCPU(b, p.server)
				sw0 := procSwitches(p.client) + procSwitches(p.server)
				b.ResetTimer()
				lat := exchange(b, conns, b.N, rrRate)
				b.StopTimer()
				c1, s1 := procCPU(b, p.client), procCPU(b, p.server)
				sw1 := procSwitches(p.client) + procSwitches(p.server)
				b.ReportMetric(float64(sw1-sw0)/float64(b.N), "ctxsw/req")
				b.ReportMetric(float64(max(procStatus(p.client, "RssAnon"), procStatus(p.server, "RssAnon"))), "anon-KiB")
				perReq := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N) }
				reportRR(b, lat, 0)
				b.ReportMetric(perReq(c1-c0), "client-cpu-us/req")
				b.ReportMetric(perReq(s1-s0), "server-cpu-us/req")
				b.ReportMetric(perReq(c1-c0+s1-s0), "proxy-cpu-us/req")
				b.ReportMetric(perReq(c1-c0+s1-s0)*rrRate/1e6, "cores")
			})
		}
	}
}

// rrPath is a started path: the address apps dial and the proxies' pids (split mode).
type rrPath struct {
	front          string
	client, server int
}

func startRRPath(b *testing.B, mode string, split bool) rrPath {
	b.Helper()
	up := startUpstream(b, echoSmall)
	pki := newRRPKI(b)
	dir := b.TempDir()
	writePKI(b, pki, dir)
	var p rrPath
	var next string
	switch mode {
	case "direct":
		return rrPath{front: up}
	case "hbone":
		next, p.server = startRole(b, split, roleHBONEServer, pki, dir, "", up)
		p.front, p.client = startRole(b, split, roleHBONEClient, pki, dir, next, up)
	case "plain-tls":
		next, p.server = startRole(b, split, roleTLSServer, pki, dir, "", up)
		p.front, p.client = startRole(b, split, roleTLSClient, pki, dir, next, up)
	default:
		b.Fatalf("unknown mode %q", mode)
	}
	return p
}

// echoSmall echoes what it reads, one read and one write at a time, as a small
// request/response server does.
func echoSmall(c net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func dialRR(b *testing.B, addr string, n int) []net.Conn {
	b.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns
}

// exchange makes n exchanges over conns, concurrently per connection, closed loop
// (rate 0) or paced at rate exchanges/s in all, and returns each exchange's duration.
func exchange(b *testing.B, conns []net.Conn, n, rate int) []time.Duration {
	lats := make([][]time.Duration, len(conns))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range conns {
		k := n / len(conns)
		if i < n%len(conns) {
			k++
		}
		lats[i] = make([]time.Duration, 0, k)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var period time.Duration
			next := start
			if rate > 0 {
				period = time.Duration(len(conns)) * time.Second / time.Duration(rate)
				next = start.Add(period * time.Duration(i) / time.Duration(len(conns)))
			}
			req, resp := make([]byte, rrSize), make([]byte, rrSize)
			for range k {
				if rate > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(period)
					if now := time.Now(); next.Before(now) {
						next = now // uniform, no catch-up
					}
				}
				t0 := time.Now()
				if _, err := c.Write(req); err != nil {
					b.Error(err)
					return
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					b.Error(err)
					return
				}
				lats[i] = append(lats[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	return slices.Concat(lats...)
}

// reportRR reports exchange time percentiles and, when cpu > 0, CPU per exchange.
func reportRR(b *testing.B, lat []time.Duration, cpu time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-us")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(len(lat)), "cpu-us/req")
	}
}

// selfCPU is this process's CPU time so far (getrusage RUSAGE_SELF, user+system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procSwitches is the context switches (voluntary and not) of process pid's threads.
func procSwitches(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	var n int64
	for _, t := range tasks {
		n += statusField(t+"/status", "voluntary_ctxt_switches") + statusField(t+"/status", "nonvoluntary_ctxt_switches")
	}
	return n
}

// procStatus is a numeric field of /proc/<pid>/status (sizes in KiB).
func procStatus(pid int, field string) int64 {
	return statusField(fmt.Sprintf("/proc/%d/status", pid), field)
}

func statusField(path, field string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			i, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return i
		}
	}
	return 0
}

// procCPU is process pid's CPU time so far, from its process CPU clock
// (clock_getcpuclockid: ^pid<<3 | CPUCLOCK_SCHED), precise to the nanosecond.
func procCPU(b *testing.B, pid int) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(^pid<<3|2), &ts); err != nil {
		b.Fatalf("cpu clock of %d: %v", pid, err)
	}
	return time.Duration(ts.Nano())
}
