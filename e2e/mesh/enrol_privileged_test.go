package mesh

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// inboundMTLS sums the node ztunnel's destination-reported mTLS connections.
func inboundMTLS(m *Mesh, node string) (float64, error) {
	return InboundMTLS(m.Nodes[node].NetnsPath)
}

// TestPrivilegedLiveEnrolment relabels a namespace while its pods keep running
// (F-ENROL-1): ambient → traffic over HBONE; label removed → the same pods talk in
// plaintext and ztunnel stops serving them; ambient again → HBONE again.
func TestPrivilegedLiveEnrolment(t *testing.T) {
	ctx, m := startTestMesh(t, "ambit-enrol-test")
	for _, err := range []error{m.Config.Namespace("demo", true), m.Config.ServiceAccount("demo", "default")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	client, err := m.AddPod(ctx, PodSpec{Node: "node-a", Namespace: "demo", Name: "client"})
	if err != nil {
		t.Fatal(err)
	}
	server, err := m.AddPod(ctx, PodSpec{Node: "node-b", Namespace: "demo", Name: "server"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Start(ctx, m.LogPath("app-server"), m.Bin("ambit-echo"), "server", "--name", "server"); err != nil {
		t.Fatal(err)
	}
	target := netip.AddrPortFrom(server.IP, 9000)

	// expect sends one connection and checks whether node-b's ztunnel saw it as mTLS.
	expect := func(when string, mtls bool) {
		t.Helper()
		before, err := inboundMTLS(m, "node-b")
		if err != nil {
			t.Fatal(err)
		}
		r, err := tcpEcho(ctx, m, client, target)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if ap, _ := netip.ParseAddrPort(r.Peer); ap.Addr() != client.IP {
			t.Fatalf("%s: server saw %s, want %s", when, r.Peer, client.IP)
		}
		err = Poll(ctx, 10*time.Second, func() error {
			after, err := inboundMTLS(m, "node-b")
			if err != nil {
				return err
			}
			if got := after > before; got != mtls {
				return fmt.Errorf("%s: mTLS connection recorded = %v, want %v", when, got, mtls)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	served := func(node string, want int) error {
		return Poll(ctx, 30*time.Second, func() error {
			d, err := m.ConfigDump(node)
			if err != nil {
				return err
			}
			if len(d.InpodWorkloads) != want {
				return fmt.Errorf("ztunnel %s serves %d pods, want %d", node, len(d.InpodWorkloads), want)
			}
			return nil
		})
	}

	for _, node := range []string{"node-a", "node-b"} {
		if err := served(node, 1); err != nil {
			t.Fatal(err)
		}
	}
	expect("enrolled", true)

	if err := m.Config.Namespace("demo", false); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"node-a", "node-b"} {
		if err := served(node, 0); err != nil {
			t.Fatal(err)
		}
	}
	// WDS must also have turned the workloads to plaintext before the check is fair;
	// with no ztunnel serving either pod, any connection now is direct.
	expect("label removed", false)

	if err := m.Config.Namespace("demo", true); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"node-a", "node-b"} {
		if err := served(node, 1); err != nil {
			t.Fatal(err)
		}
	}
	err = Poll(ctx, 30*time.Second, func() error {
		before, _ := inboundMTLS(m, "node-b")
		if _, err := tcpEcho(ctx, m, client, target); err != nil {
			return err
		}
		after, _ := inboundMTLS(m, "node-b")
		if after <= before {
			return fmt.Errorf("relabelled: connection was not mTLS yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
