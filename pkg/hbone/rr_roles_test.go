package hbone

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// The request/response benchmarks run each proxy of a path in a role: in the benchmark
// process (goroutines), or in a child process of the test binary so its CPU is measured
// on its own, as two ztunnels are two processes.
const (
	roleHBONEClient = "hbone-client" // accepts app connections, Proxy over HBONE
	roleHBONEServer = "hbone-server" // HBONE server dialing the :authority
	roleTLSClient   = "tls-client"   // accepts app connections, one TLS connection each
	roleTLSServer   = "tls-server"   // TLS server forwarding each connection upstream

	rrRoleEnv    = "AMBIT_HBONE_BENCH_ROLE"    // child: the role to serve on fd 3
	rrPKIEnv     = "AMBIT_HBONE_BENCH_PKI"     // child: directory of PEM files
	rrNextEnv    = "AMBIT_HBONE_BENCH_NEXT"    // child: the next hop's address
	rrTargetEnv  = "AMBIT_HBONE_BENCH_TARGET"  // child: the upstream (echo) address
	rrProfileEnv = "AMBIT_HBONE_BENCH_PROFILE" // child: write a CPU profile to <this>.<role>.pprof
	rrProcsEnv   = "AMBIT_HBONE_BENCH_PROCS"   // child: GOMAXPROCS, if set
	rrAgeEnv     = "AMBIT_HBONE_BENCH_AGE_MB"  // child: churn this many MB of heap first
)

// rrPKI is what the roles need of the mesh PKI.
type rrPKI struct {
	roots          *x509.CertPool
	client, server *tls.Certificate
}

func newRRPKI(t testing.TB) rrPKI {
	ca := newTestCA(t)
	return rrPKI{roots: ca.pool, client: ca.leaf(t, clientID, time.Time{}, time.Time{}),
		server: ca.leaf(t, serverID, time.Time{}, time.Time{})}
}

// serveRole serves role on ln until ctx ends; next is the next proxy's address and
// target the upstream's.
func serveRole(ctx context.Context, role string, ln net.Listener, pki rrPKI, next, target string) error {
	switch role {
	case roleHBONEServer:
		cfg := ServerConfig{
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return pki.server, nil },
			Roots:          func() *x509.CertPool { return pki.roots },
			TrustDomain:    "cluster.local",
			Connect:        dialAuthority,
		}
		return NewServer(cfg).Serve(ctx, ln)
	case roleHBONEClient:
		client := NewClient(ClientConfig{
			GetClientCertificate: func() (*tls.Certificate, error) { return pki.client, nil },
			Roots:                func() *x509.CertPool { return pki.roots },
			TrustDomain:          "cluster.local",
		})
		defer client.Close()
		req := Request{Address: next, Authority: target, Identities: []spiffe.Identity{serverID}}
		return acceptEach(ctx, ln, func(c net.Conn) {
			_, _ = client.Proxy(ctx, req, c)
		})
	case roleTLSServer:
		tcfg := &tls.Config{Certificates: []tls.Certificate{*pki.server}, MinVersion: tls.VersionTLS13}
		return acceptEach(ctx, tls.NewListener(ln, tcfg), func(c net.Conn) {
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			forward(c, u)
		})
	case roleTLSClient:
		tcfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
		return acceptEach(ctx, ln, func(c net.Conn) {
			u, err := tls.Dial("tcp", next, tcfg)
			if err != nil {
				return
			}
			defer u.Close()
			forward(c, u)
		})
	}
	return fmt.Errorf("unknown role %q", role)
}

// acceptEach runs handle for every connection on ln until ctx ends, then closes ln and
// the open connections and waits for the handlers.
func acceptEach(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	stop := context.AfterFunc(ctx, func() {
		_ = ln.Close()
		mu.Lock()
		for c := range open {
			_ = c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		mu.Lock()
		open[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(c)
			_ = c.Close()
			mu.Lock()
			delete(open, c)
			mu.Unlock()
		}()
	}
}

// startRole serves role on a new loopback listener until the benchmark ends, in this
// process (pid 0) or in a child process (its pid). It returns the listener's address.
func startRole(b *testing.B, split bool, role string, pki rrPKI, pkiDir, next, target string) (string, int) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	if !split {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serveRole(ctx, role, ln, pki, next, target) }()
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("%s: %v", role, err)
			}
		})
		return addr, 0
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$", "role="+role) // the role shows in ps
	cmd.Env = append(os.Environ(), rrRoleEnv+"="+role, rrPKIEnv+"="+pkiDir, rrNextEnv+"="+next, rrTargetEnv+"="+target)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close() // the child stops at EOF on stdin
		if err := cmd.Wait(); err != nil {
			b.Errorf("%s child: %v", role, err)
		}
	})
	return addr, cmd.Process.Pid
}

// rrChildMain is a child process's main: serve the role of the environment on fd 3 until
// stdin closes.
func rrChildMain(role string) int {
	pki, err := readPKI(os.Getenv(rrPKIEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if n, err := strconv.Atoi(os.Getenv(rrProcsEnv)); err == nil && n > 0 {
		runtime.GOMAXPROCS(n)
	}
	if mb, err := strconv.Atoi(os.Getenv(rrAgeEnv)); err == nil && mb > 0 {
		ageHeap(mb)
	}
	if p := os.Getenv(rrProfileEnv); p != "" {
		f, err := os.Create(p + "." + role + ".pprof")
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if err := serveRole(ctx, role, ln, pki, os.Getenv(rrNextEnv), os.Getenv(rrTargetEnv)); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		return 1
	}
	return 0
}

// writePKI stores pki as PEM files in dir, for child processes.
func writePKI(t testing.TB, pki rrPKI, dir string) {
	t.Helper()
	root := pki.client.Certificate[len(pki.client.Certificate)-1] // leaves come with their root
	files := map[string][]byte{"roots.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root})}
	for name, c := range map[string]*tls.Certificate{"client": pki.client, "server": pki.server} {
		var chain []byte
		for _, der := range c.Certificate {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
		}
		key, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		files[name+".pem"] = append(chain, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: key})...)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// readPKI loads what writePKI stored.
func readPKI(dir string) (rrPKI, error) {
	roots, err := os.ReadFile(filepath.Join(dir, "roots.pem"))
	if err != nil {
		return rrPKI{}, fmt.Errorf("read roots: %w", err)
	}
	pki := rrPKI{roots: x509.NewCertPool()}
	if !pki.roots.AppendCertsFromPEM(roots) {
		return rrPKI{}, errors.New("read roots: no certificate")
	}
	for name, dst := range map[string]**tls.Certificate{"client": &pki.client, "server": &pki.server} {
		p := filepath.Join(dir, name+".pem")
		c, err := tls.LoadX509KeyPair(p, p)
		if err != nil {
			return rrPKI{}, fmt.Errorf("read %s certificate: %w", name, err)
		}
		*dst = &c
	}
	return pki, nil
}

// ageHeap makes this process's heap look like a long-running one: mb MB of objects
// allocated and collected, so their pages are free but resident and later large
// allocations that reuse them are zeroed (touched) first.
func ageHeap(mb int) {
	var keep [][]byte
	for range mb * 16 {
		keep = append(keep, make([]byte, 64<<10))
		for i := 0; i < 64<<10; i += 4096 {
			keep[len(keep)-1][i] = 1
		}
	}
	runtime.KeepAlive(keep)
	keep = nil
	runtime.GC()
	runtime.GC()
}
