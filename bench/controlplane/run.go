package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// Sources are the config sources Run can load istiod-lite through.
const (
	SourceFile = "file"
	SourceKube = "kube"
)

// Config is one measurement.
type Config struct {
	// Istiod is the istiod-lite binary.
	Istiod string
	// Source is SourceFile or SourceKube.
	Source string
	// KubeBinDir holds etcd and kube-apiserver (SourceKube), as hack/build-kube-tools.sh
	// builds them.
	KubeBinDir string
	// WorkDir receives the config directory or the cluster's data, the CA and
	// istiod-lite's logs. It must exist.
	WorkDir string
	// Pods, Services and Clients size the load (performance.md: 10,000, 1,000, 100).
	Pods, Services, Clients int
	// Rate is the pod changes per second and Duration how long they go on.
	Rate     float64
	Duration time.Duration
	// IstiodArgs are extra istiod-lite flags (e.g. --log-level=debug).
	IstiodArgs []string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// Profile, when set, saves istiod-lite's CPU profile over the churn as
	// <WorkDir>/<source>/istiod-churn.pprof (from its /debug/pprof/profile), the
	// simulated clients' (this process) as cpbench-churn.pprof and the churn's timeline as
	// churn.csv.
	Profile bool
}

// Result holds one measurement's figures; durations are in milliseconds.
type Result struct {
	Source   string  `json:"source"`
	Pods     int     `json:"pods"`
	Services int     `json:"services"`
	Clients  int     `json:"clients"`
	Rate     float64 `json:"rate_per_second"`
	// LoadSeconds is how long writing the objects to the API server took (kube only).
	LoadSeconds float64 `json:"load_seconds,omitempty"`
	// InitialSyncSeconds is from the clients' start until every one held every address.
	InitialSyncSeconds float64 `json:"initial_sync_seconds"`
	// Changes were written; Missing of them did not reach every client in time.
	Changes int `json:"changes"`
	Missing int `json:"missing"`
	// Event to push: from the write to the last client holding the change (and, for
	// comparison, to the first).
	P50Ms      float64 `json:"p50_ms"`
	P90Ms      float64 `json:"p90_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	FirstP50Ms float64 `json:"first_client_p50_ms"`
	FirstP99Ms float64 `json:"first_client_p99_ms"`
	// Per change and per client: resources and bytes (marshalled Resource) received.
	ResourcesPerChange float64 `json:"resources_per_change_per_client"`
	BytesPerChange     float64 `json:"bytes_per_change_per_client"`
	// IstiodCPUMsPerChange is istiod-lite's CPU time during the churn per change.
	IstiodCPUMsPerChange float64 `json:"istiod_cpu_ms_per_change"`
	// IstiodRSSMiB is istiod-lite's resident memory after the churn, IstiodPeakMiB its
	// high-water mark (the initial sync of every client included).
	IstiodRSSMiB  float64 `json:"istiod_rss_mib"`
	IstiodPeakMiB float64 `json:"istiod_peak_mib"`
	// ResentOnReconnect counts resources sent to the up-to-date clients after
	// istiod-lite was killed and restarted, beyond one marker change each (F-CP-2:
	// must be 0); ReconnectMarkerMs is from the restarted istiod-lite's readiness until
	// every client held the marker change.
	ResentOnReconnect int64   `json:"resent_on_reconnect"`
	ReconnectMarkerMs float64 `json:"reconnect_marker_ms"`
}

// source is a config source driver.
type source interface {
	args() []string
	change(ctx context.Context, pod int, rev string) error
	parallel() int // changes that may be in flight at once
	close() error
}

func (*fileSource) parallel() int { return 1 }
func (*kubeSource) parallel() int { return 32 }

// deliveryTimeout bounds the wait for a change to reach every client.
const deliveryTimeout = 60 * time.Second

// Run measures one configuration. It stops everything it started before returning.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Pods < 1 || cfg.Services < 1 || cfg.Clients < 1 || cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("run control-plane bench: pods, services, clients, rate and duration must be positive")
	}
	res = &Result{Source: cfg.Source, Pods: cfg.Pods, Services: cfg.Services, Clients: cfg.Clients, Rate: cfg.Rate}
	dir := filepath.Join(cfg.WorkDir, cfg.Source)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run control-plane bench: %w", err)
	}
	log.Info("loading objects", "source", cfg.Source, "pods", cfg.Pods, "services", cfg.Services)
	var src source
	switch cfg.Source {
	case SourceFile:
		src, err = newFileSource(filepath.Join(dir, "config"), cfg.Pods, cfg.Services)
	case SourceKube:
		var ks *kubeSource
		ks, err = newKubeSource(ctx, cfg.KubeBinDir, dir, cfg.Pods, cfg.Services, log)
		if ks != nil {
			res.LoadSeconds = ks.loadTime.Seconds()
			src = ks
		}
	default:
		return nil, fmt.Errorf("run control-plane bench: unknown source %q", cfg.Source)
	}
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, src.close()) }()

	d, err := newIstiod(cfg.Istiod, dir, append(src.args(), cfg.IstiodArgs...))
	if err != nil {
		return nil, err
	}
	defer d.kill()
	log.Info("starting istiod-lite")
	if err := d.start(ctx); err != nil {
		return nil, err
	}

	cctx, stopClients := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(cctx)
	tr := newTracker(cfg.Clients)
	syncStart := time.Now()
	fl, err := startFleet(gctx, g, d.xdsAddr, cfg.Clients, cfg.Pods+cfg.Services, tr)
	if err != nil {
		stopClients()
		return nil, err
	}
	defer func() {
		stopClients()
		err = errors.Join(err, g.Wait())
		fl.close()
	}()
	sctx, cancel := context.WithTimeout(gctx, 5*time.Minute)
	err = fl.waitSynced(sctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("initial sync: %w", err)
	}
	res.InitialSyncSeconds = time.Since(syncStart).Seconds()
	log.Info("clients synced", "clients", cfg.Clients, "after", time.Since(syncStart))

	if err := churn(gctx, cfg, src, tr, fl, d, res, log); err != nil {
		return nil, err
	}
	if err := reconnect(gctx, cfg, src, tr, fl, d, res, log); err != nil {
		return nil, err
	}
	return res, nil
}

// churn writes cfg.Rate changes per second for cfg.Duration and records their figures.
func churn(ctx context.Context, cfg Config, src source, tr *tracker, fl *fleet, d *istiod, res *Result, log *slog.Logger) error {
	n := int(cfg.Rate * cfg.Duration.Seconds())
	res.Changes = n
	resBefore, bytesBefore := fl.totals()
	before, err := d.usage()
	if err != nil {
		return err
	}
	log.Info("churning", "changes", n, "rate", cfg.Rate)
	var profiled chan error
	if cfg.Profile {
		profiled = make(chan error, 1)
		go func() { profiled <- d.cpuProfile(ctx, cfg.Duration) }()
		if f, err := os.Create(filepath.Join(d.dir, "cpbench-churn.pprof")); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			} else {
				f.Close()
			}
		}
	}
	if err := writeChanges(ctx, cfg, src, tr, 1, n); err != nil {
		return err
	}
	waitDelivered(ctx, tr, 1, n+1)
	if profiled != nil {
		if err := <-profiled; err != nil {
			log.Warn("istiod-lite CPU profile", "err", err)
		}
		if err := tr.writeCSV(filepath.Join(d.dir, "churn.csv"), 1, n+1); err != nil {
			log.Warn("churn timeline", "err", err)
		}
	}
	after, err := d.usage()
	if err != nil {
		return err
	}
	resAfter, bytesAfter := fl.totals()
	last, first, missing := tr.latencies(1, n+1)
	res.Missing = missing
	res.P50Ms, res.P90Ms, res.P99Ms, res.MaxMs = pct(last, 50), pct(last, 90), pct(last, 99), pct(last, 100)
	res.FirstP50Ms, res.FirstP99Ms = pct(first, 50), pct(first, 99)
	per := float64(n) * float64(cfg.Clients)
	res.ResourcesPerChange = float64(resAfter-resBefore) / per
	res.BytesPerChange = float64(bytesAfter-bytesBefore) / per
	res.IstiodCPUMsPerChange = ms(after.CPU-before.CPU) / float64(n)
	res.IstiodRSSMiB, res.IstiodPeakMiB = float64(after.RSS)/(1<<20), float64(after.HWM)/(1<<20)
	log.Info("churn done", "p50_ms", res.P50Ms, "p99_ms", res.P99Ms, "missing", missing)
	return nil
}

// writeChanges writes changes from..to (inclusive) at cfg.Rate, each registered with
// the tracker just before its write.
func writeChanges(ctx context.Context, cfg Config, src source, tr *tracker, from, to int) error {
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(src.parallel())
	start := time.Now()
	for k := from; k <= to; k++ {
		if wait := time.Until(start.Add(time.Duration(k-from) * interval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-gctx.Done():
				t.Stop()
				return g.Wait()
			case <-t.C:
			}
		}
		g.Go(func() error {
			tr.expect(k, time.Now())
			return src.change(gctx, changedPod(k, cfg.Pods), revision(k))
		})
	}
	return g.Wait()
}

// waitDelivered waits until changes [from, to) reached every client or deliveryTimeout
// passed (the caller counts what is missing).
func waitDelivered(ctx context.Context, tr *tracker, from, to int) {
	deadline := time.NewTimer(deliveryTimeout)
	defer deadline.Stop()
	for k := from; k < to; k++ {
		tr.mu.Lock()
		done := tr.record(k).done
		tr.mu.Unlock()
		select {
		case <-done:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// reconnect kills and restarts istiod-lite, writes one marker change and counts what the
// clients were sent beyond it.
func reconnect(ctx context.Context, cfg Config, src source, tr *tracker, fl *fleet, d *istiod, res *Result, log *slog.Logger) error {
	before, _ := fl.totals()
	log.Info("restarting istiod-lite")
	d.kill()
	if err := d.start(ctx); err != nil {
		return fmt.Errorf("restart istiod-lite: %w", err)
	}
	ready := time.Now()
	marker := res.Changes + 1
	done := tr.expect(marker, time.Now())
	if err := src.change(ctx, changedPod(marker, cfg.Pods), revision(marker)); err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(deliveryTimeout):
		return errors.New("marker change after restart did not reach every client")
	case <-ctx.Done():
		return ctx.Err()
	}
	res.ReconnectMarkerMs = ms(time.Since(ready))
	after, _ := fl.totals()
	res.ResentOnReconnect = after - before - int64(cfg.Clients)
	log.Info("reconnect done", "resent", res.ResentOnReconnect, "marker_ms", res.ReconnectMarkerMs)
	return nil
}

// pct is the nearest-rank percentile p of ds in milliseconds (0 for none).
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	i = max(0, min(i, len(s)-1))
	return ms(s[i])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
