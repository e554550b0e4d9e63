package capture

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ambitmesh/ambit/e2e/cluster"
)

// TestPrivilegedCaptureBetweenNodes is the demo's wire check without a
// mesh: ambit-echo traffic from a pod on node-a to a pod on node-b shows
// its marker in plaintext on node-a's fabric link, on port 9000.
func TestPrivilegedCaptureBetweenNodes(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(t.TempDir(), "ambit-echo")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ambitmesh/ambit/e2e/cmd/ambit-echo").CombinedOutput(); err != nil {
		t.Fatalf("build ambit-echo: %v\n%s", err, out)
	}
	c, err := cluster.New("capn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	var pods []*cluster.Pod
	for _, name := range []string{"node-a", "node-b"} {
		n, err := c.AddNode(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := n.AddPod("demo", "echo-"+name)
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	client, server := pods[0], pods[1]
	if _, err := server.Start(context.Background(), "", bin, "server", "--name", server.Name, "--tcp", ":9000", "--http", ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := client.Dial(context.Background(), "tcp", server.IP.String()+":9000")
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not reachable: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}

	capt, err := Start(client.Node.NetnsPath, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	marker := "MARKER-" + client.UID
	out, err := client.Run(context.Background(), bin, "tcp", "--addr", server.IP.String()+":9000", "--payload", marker)
	sum, stopErr := capt.Stop()
	if err != nil || stopErr != nil {
		t.Fatalf("tcp: %v %v\n%s", err, stopErr, out)
	}
	var r struct {
		Pod string `json:"pod"`
		OK  bool   `json:"ok"`
	}
	if err := json.Unmarshal(out, &r); err != nil || !r.OK || r.Pod != server.Name {
		t.Fatalf("tcp result %s: %v", out, err)
	}
	if !sum.Contains([]byte(marker)) || !slices.Contains(sum.PayloadPorts(), 9000) {
		t.Fatalf("marker %v, payload ports %v, packets %v", sum.Contains([]byte(marker)), sum.PayloadPorts(), sum.Packets)
	}
	if err := NoPacketFilterRules(c.FabricNetns, client.Node.NetnsPath, server.Node.NetnsPath, client.NetnsPath, server.NetnsPath); err != nil {
		t.Fatal(err)
	}
}
