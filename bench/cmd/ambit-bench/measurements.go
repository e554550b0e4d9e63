package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ambitmesh/ambit/bench/measure"
	"github.com/ambitmesh/ambit/bench/report"
)

// maxErrorShare is the share of failed calls a fortio run may have before the mode
// counts as failed.
const maxErrorShare = 0.001

// round measures one mode once: latency at the fixed rate (with its proxies' CPU, and
// their peak RSS per proxy, which it returns), the connection rate, and throughput
// with 1 and 4 streams (with the proxies' CPU per GB on the single stream). Latency
// comes first so its RSS is not inflated by the bulk transfers' buffers.
func (b *bench) round(ctx context.Context, mode string) (report.Figures, []int64, error) {
	var f report.Figures
	peaks, err := b.latency(ctx, mode, &f)
	if err != nil {
		return f, nil, err
	}
	rate, err := b.fortio(ctx, mode, b.pairs[mode].url(), "-keepalive=false", "-qps", "0",
		"-c", fmt.Sprint(b.cfg.conns), "-t", b.cfg.connTime.String())
	if err != nil {
		return f, nil, fmt.Errorf("connection rate %s: %w", mode, err)
	}
	f.ConnsPerSec = rate.ConnsPerSecond()
	if err := b.throughput(ctx, mode, &f); err != nil {
		return f, nil, err
	}
	return f, peaks, nil
}

// throughput runs iperf3 with 1 and 4 streams and fills their rates and the
// proxies' CPU per GB of the single stream.
func (b *bench) throughput(ctx context.Context, mode string, f *report.Figures) error {
	before, err := b.sampleProxies(mode)
	if err != nil {
		return err
	}
	one, err := b.iperf(ctx, mode, 1)
	if err != nil {
		return err
	}
	after, err := b.sampleProxies(mode)
	if err != nil {
		return err
	}
	f.Gbps1 = one.Gbps()
	if one.Bytes > 0 {
		f.ProxyCPUPerGB = cpuSeconds(before, after) / (float64(one.Bytes) / 1e9)
	}
	four, err := b.iperf(ctx, mode, 4)
	if err != nil {
		return err
	}
	f.Gbps4 = four.Gbps()
	return nil
}

// latency runs fortio at the fixed rate while sampling the proxies' RSS; it fills the
// percentiles and the proxies' CPU (cores, both together) and returns each proxy's
// peak sampled RSS in bytes.
func (b *bench) latency(ctx context.Context, mode string, f *report.Figures) ([]int64, error) {
	before, err := b.sampleProxies(mode)
	if err != nil {
		return nil, err
	}
	stop, peak := make(chan struct{}), make(chan []int64)
	go func() { peak <- b.peakRSS(mode, stop, 500*time.Millisecond) }()
	h, err := b.fortio(ctx, mode, b.pairs[mode].url(), "-qps", fmt.Sprint(b.cfg.qps), "-c", fmt.Sprint(b.cfg.conns),
		"-t", b.cfg.latencyTime.String(), "-payload-size", fmt.Sprint(b.cfg.payload), "-uniform", "-nocatchup")
	close(stop)
	peaks := <-peak
	if err != nil {
		return nil, fmt.Errorf("latency %s: %w", mode, err)
	}
	after, err := b.sampleProxies(mode)
	if err != nil {
		return nil, err
	}
	f.ProxyCores = cpuSeconds(before, after) / after[0].At.Sub(before[0].At).Seconds()
	if h.ActualQPS < 0.95*float64(b.cfg.qps) {
		logf("warning: %s latency run reached %.0f of %d req/s; its figures describe a lower rate", mode, h.ActualQPS, b.cfg.qps)
	}
	for _, p := range []struct {
		pct float64
		dst *float64
	}{{50, &f.P50Micros}, {90, &f.P90Micros}, {99, &f.P99Micros}} {
		d, ok := h.Percentile(p.pct)
		if !ok {
			return nil, fmt.Errorf("latency %s: fortio reported no p%v", mode, p.pct)
		}
		*p.dst = float64(d) / float64(time.Microsecond)
	}
	return peaks, nil
}

// iperf runs an iperf3 client with streams parallel streams against the mode's server.
func (b *bench) iperf(ctx context.Context, mode string, streams int) (measure.Throughput, error) {
	p := b.pairs[mode]
	secs := int(b.cfg.iperfTime / time.Second)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	out, err := p.client.Run(ctx, b.cfg.iperf3, "-c", p.target.String(), "-p", fmt.Sprint(iperfPort),
		"-t", fmt.Sprint(secs), "-P", fmt.Sprint(streams), "-J", "--connect-timeout", "5000")
	t, perr := measure.ParseIperf3(out)
	if perr != nil {
		return t, fmt.Errorf("iperf3 -P %d %s: %w (run: %v)", streams, mode, perr, err)
	}
	return t, nil
}

// fortio runs `fortio load` from the mode's client pod with the shared flags (HTTP/1.1,
// fine histogram resolution, JSON on stdout) and args, and rejects runs with more than
// maxErrorShare failed calls.
func (b *bench) fortio(ctx context.Context, mode, url string, args ...string) (measure.HTTPLoad, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.latencyTime+b.cfg.connTime+time.Minute)
	defer cancel()
	argv := append([]string{b.cfg.fortio, "load", "-quiet", "-r", "0.00001", "-p", "50,90,99,99.9", "-json", "-"}, args...)
	out, err := b.pairs[mode].client.Run(ctx, append(argv, url)...)
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

// sampleProxies reads the /proc figures of the mode's proxies; one that exited is an
// error.
func (b *bench) sampleProxies(mode string) ([]measure.ProcSample, error) {
	ps := b.pairs[mode].proxies
	s := make([]measure.ProcSample, len(ps))
	for i, p := range ps {
		var err error
		if s[i], err = measure.ReadProc(p.pid); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return s, nil
}

// peakRSS samples the mode's proxies every interval until stop closes and returns the
// largest VmRSS seen, per proxy, in bytes.
func (b *bench) peakRSS(mode string, stop <-chan struct{}, interval time.Duration) []int64 {
	t := time.NewTicker(interval)
	defer t.Stop()
	peak := make([]int64, len(b.pairs[mode].proxies))
	for {
		if s, err := b.sampleProxies(mode); err == nil {
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
