package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ambitmesh/ambit/bench/measure"
	"github.com/ambitmesh/ambit/bench/report"
)

// maxErrorShare is the share of failed calls a fortio run may have before the case
// counts as failed.
const maxErrorShare = 0.001

// bulk measures the case's connection rate, then its throughput with 1 and 4 streams
// (with the proxies' CPU per GB of the single stream), into f.
func (b *bench) bulk(ctx context.Context, bc benchCase, f *report.Figures) error {
	rate, err := b.fortio(ctx, bc, b.pairs[bc].url(), "-keepalive=false", "-qps", "0",
		"-c", fmt.Sprint(b.cfg.conns), "-t", b.cfg.connTime.String())
	if err != nil {
		return fmt.Errorf("connection rate: %w", err)
	}
	f.ConnsPerSec = rate.ConnsPerSecond()
	before, err := b.sampleProxies(bc)
	if err != nil {
		return err
	}
	one, err := b.iperf(ctx, bc, 1)
	if err != nil {
		return err
	}
	after, err := b.sampleProxies(bc)
	if err != nil {
		return err
	}
	f.Gbps1 = one.Gbps()
	if one.Bytes > 0 {
		f.ProxyCPUPerGB = cpuSeconds(before, after) / (float64(one.Bytes) / 1e9)
	}
	four, err := b.iperf(ctx, bc, 4)
	if err != nil {
		return err
	}
	f.Gbps4 = four.Gbps()
	return nil
}

// latencyPoints runs the fixed-rate latency run once per connection count, in order,
// while sampling the proxies' RSS. It stores the points in f in --latency-conns order
// and returns each proxy's peak sampled RSS in bytes.
func (b *bench) latencyPoints(ctx context.Context, bc benchCase, order []int, f *report.Figures) ([]int64, error) {
	stop, peak := make(chan struct{}), make(chan []int64)
	go func() { peak <- b.peakRSS(bc, stop, 500*time.Millisecond) }()
	f.Latency = make([]report.Latency, len(b.cfg.latencyConns))
	for _, n := range order {
		l, err := b.latency(ctx, bc, n)
		if err != nil {
			close(stop)
			<-peak
			return nil, err
		}
		f.Latency[slices.Index(b.cfg.latencyConns, n)] = l
	}
	close(stop)
	return <-peak, nil
}

// latency runs fortio at the fixed rate over conns connections and returns the
// percentiles and the proxies' CPU (cores, and CPU-s per 1000 calls; both proxies
// together).
func (b *bench) latency(ctx context.Context, bc benchCase, conns int) (report.Latency, error) {
	l := report.Latency{Conns: conns}
	before, err := b.sampleProxies(bc)
	if err != nil {
		return l, err
	}
	if b.cfg.profileDir != "" && conns == report.HeadlineConns && !b.profiled[bc] {
		b.profiled[bc] = true
		defer b.profileProxies(ctx, bc, b.cfg.latencyTime-time.Second)()
	}
	h, err := b.fortio(ctx, bc, b.pairs[bc].url(), "-qps", fmt.Sprint(b.cfg.qps), "-c", fmt.Sprint(conns),
		"-t", b.cfg.latencyTime.String(), "-payload-size", fmt.Sprint(b.cfg.payload), "-uniform", "-nocatchup")
	if err != nil {
		return l, fmt.Errorf("latency over %d conns: %w", conns, err)
	}
	after, err := b.sampleProxies(bc)
	if err != nil {
		return l, err
	}
	cpu := cpuSeconds(before, after)
	l.QPS, l.ProxyCores = h.ActualQPS, cpu/after[0].At.Sub(before[0].At).Seconds()
	if h.Requests > 0 {
		l.ProxyCPUPer1k = cpu / (float64(h.Requests) / 1000)
	}
	if h.ActualQPS < 0.95*float64(b.cfg.qps) {
		logf("warning: %s latency run over %d conns reached %.0f of %d req/s; its figures describe a lower rate",
			bc, conns, h.ActualQPS, b.cfg.qps)
	}
	for _, p := range []struct {
		pct float64
		dst *float64
	}{{50, &l.P50Micros}, {90, &l.P90Micros}, {99, &l.P99Micros}} {
		d, ok := h.Percentile(p.pct)
		if !ok {
			return l, fmt.Errorf("latency over %d conns: fortio reported no p%v", conns, p.pct)
		}
		*p.dst = float64(d) / float64(time.Microsecond)
	}
	return l, nil
}

// iperf runs an iperf3 client with streams parallel streams against the case's server.
func (b *bench) iperf(ctx context.Context, bc benchCase, streams int) (measure.Throughput, error) {
	p := b.pairs[bc]
	secs := int(b.cfg.iperfTime / time.Second)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	out, err := p.client.Run(ctx, b.cfg.iperf3, "-c", p.target.String(), "-p", fmt.Sprint(iperfPort),
		"-t", fmt.Sprint(secs), "-P", fmt.Sprint(streams), "-J", "--connect-timeout", "5000")
	t, perr := measure.ParseIperf3(out)
	if perr != nil {
		return t, fmt.Errorf("iperf3 -P %d: %w (run: %v)", streams, perr, err)
	}
	return t, nil
}

// fortio runs `fortio load` from the case's client pod with the shared flags (HTTP/1.1,
// fine histogram resolution, JSON on stdout) and args, and rejects runs with more than
// maxErrorShare failed calls.
func (b *bench) fortio(ctx context.Context, bc benchCase, url string, args ...string) (measure.HTTPLoad, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.latencyTime+b.cfg.connTime+time.Minute)
	defer cancel()
	argv := append([]string{b.cfg.fortio, "load", "-quiet", "-r", "0.00001", "-p", "50,90,99,99.9", "-json", "-"}, args...)
	out, err := b.pairs[bc].client.Run(ctx, append(argv, url)...)
	h, perr := measure.ParseFortio(out)
	if perr != nil {
		return h, fmt.Errorf("fortio: %w (run: %v)", perr, err)
	}
	if err != nil {
		return h, fmt.Errorf("fortio: %w", err)
	}
	if h.ErrorShare() > maxErrorShare {
		return h, fmt.Errorf("fortio: %d of %d calls failed", h.Errors, h.Requests)
	}
	return h, nil
}

// sampleProxies reads the /proc figures of the case's proxies; one that exited is an
// error.
func (b *bench) sampleProxies(bc benchCase) ([]measure.ProcSample, error) {
	ps := b.pairs[bc].proxies
	s := make([]measure.ProcSample, len(ps))
	for i, p := range ps {
		var err error
		if s[i], err = measure.ReadProc(p.pid); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return s, nil
}

// peakRSS samples the case's proxies every interval until stop closes and returns the
// largest VmRSS seen, per proxy, in bytes.
func (b *bench) peakRSS(bc benchCase, stop <-chan struct{}, interval time.Duration) []int64 {
	t := time.NewTicker(interval)
	defer t.Stop()
	peak := make([]int64, len(b.pairs[bc].proxies))
	for {
		if s, err := b.sampleProxies(bc); err == nil {
			for i, x := range s {
				peak[i] = max(peak[i], x.RSS)
			}
		}
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}

// cpuSeconds is the CPU the proxies used together between two samplings.
func cpuSeconds(before, after []measure.ProcSample) float64 {
	var d time.Duration
	for i := range before {
		d += after[i].CPU - before[i].CPU
	}
	return d.Seconds()
}
