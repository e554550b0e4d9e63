package app

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the package if a goroutine of the waypoint (or of its HBONE
// library) is still running after every test stopped its waypoint: Run must leave
// nothing behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		start := time.Now()
		leaked := waitNoLeaks(10 * time.Second)
		if d := time.Since(start); d > time.Second {
			fmt.Fprintf(os.Stderr, "goroutines took %v to finish\n", d)
		}
		if leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func waitNoLeaks(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		leaked := ours()
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ours returns the stacks of goroutines running waypoint or HBONE code, outside tests.
func ours() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "_test.go") || strings.Contains(g, "TestMain") {
			continue
		}
		if strings.Contains(g, "ambit/waypoint/") || strings.Contains(g, "ambit/pkg/hbone.") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
