package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/e2e/echo"
	"github.com/ambitmesh/ambit/e2e/testbed"
)

// TestE2EPolicyChangeClosesOpenConnection holds a connection open while a DENY policy
// for its client is applied (F-SEC-5): the open connection is closed and new ones are
// refused. How long each took after the API write is logged (timing goals belong to
// benchmarks, not to pass/fail tests).
func TestE2EPolicyChangeClosesOpenConnection(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	const ns = "e2e-pol-change"
	newNamespace(ctx, t, ns, true)
	server := echoServer(ctx, t, ns, "server", "node-b")
	client := sleeper(ctx, t, ns, "client", "node-a")
	if err := served(ctx, "node-a", ns, 1); err != nil {
		t.Fatal(err)
	}
	sb, err := env.Sandbox(ns, client.Name)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(logDir, "held-connection.log")
	proc, err := sb.Start(ctx, logPath, bin("ambit-echo"), "tcp", "--addr", podAddr(server, 9000), "--hold", "2m", "--payload", "held")
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Stop()
	lines := func() []echo.TCPResult {
		b, _ := os.ReadFile(logPath)
		var out []echo.TCPResult
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r echo.TCPResult
			if json.Unmarshal([]byte(l), &r) == nil {
				out = append(out, r)
			}
		}
		return out
	}
	if err := testbed.Poll(ctx, "held connection established", func(context.Context) (bool, error) {
		l := lines()
		return len(l) > 0 && l[0].Holding, fmt.Errorf("log %v", l)
	}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	applyYAML(ctx, t, ap("deny-client", ns, "DENY", "app: server", `[{from: [{source: {principals: ["cluster.local/ns/`+ns+`/sa/client"]}}]}]`))
	var refusedAfter time.Duration
	err = testbed.Poll(ctx, "new connections refused", func(ctx context.Context) (bool, error) {
		_, err := tcpEcho(ctx, client, podAddr(server, 9000))
		refusedAfter = time.Since(start)
		return err != nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var closed echo.TCPResult
	err = testbed.Poll(ctx, "held connection closed", func(context.Context) (bool, error) {
		l := lines()
		if len(l) < 2 {
			return false, nil
		}
		closed = l[1]
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if closed.OK || closed.Error == "" {
		t.Fatalf("held connection ended without an error: %+v", closed)
	}
	t.Logf("after the API write: new connections refused within %v; the open connection ended: %s",
		refusedAfter.Round(time.Millisecond), closed.Error)
}
