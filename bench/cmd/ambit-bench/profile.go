package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ambitmesh/ambit/bench/measure"
	"github.com/ambitmesh/ambit/e2e/cluster"
)

// adminPort is where ztunnel and the waypoint serve /debug/pprof/, on loopback in
// their network namespace.
const adminPort = 15000

// profileProxies starts a CPU profile of length d of every proxy of bc that serves Go
// profiles on its admin port and returns a function that waits for them and writes
// <dir>/<topology>-<mode>-<proxy>.pprof. Proxies without an admin port (the
// peer-hbone and plain-tls forwarders) are skipped.
func (b *bench) profileProxies(ctx context.Context, bc benchCase, d time.Duration) func() {
	var wg sync.WaitGroup
	for _, p := range b.pairs[bc].proxies {
		if !strings.HasPrefix(p.name, "ztunnel") && !strings.HasPrefix(p.name, "waypoint") {
			continue
		}
		path := filepath.Join(b.cfg.profileDir, fmt.Sprintf("%s-%s-%s.pprof", bc.topology, bc.mode, fileSafe(p.name)))
		wg.Go(func() {
			if err := cpuProfile(ctx, p.pid, d, path); err != nil {
				logf("  profile %s: %v", p.name, err)
			}
		})
	}
	return wg.Wait
}

// cpuProfile fetches one CPU profile over d from the process pid's admin port.
func cpuProfile(ctx context.Context, pid int, d time.Duration, path string) error {
	ns := fmt.Sprintf("/proc/%d/ns/net", pid)
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return cluster.Dial(ctx, ns, network, addr)
		},
	}}
	defer c.CloseIdleConnections()
	return measure.SaveCPUProfile(ctx, c, fmt.Sprintf("http://127.0.0.1:%d", adminPort), d, path)
}

func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return '_'
	}, s)
}
