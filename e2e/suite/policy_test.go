package suite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ambitmesh/ambit/e2e/testbed"
)

// policyCase is one row of the L4 policy table: policies applied (YAML with {{...}}
// placeholders for addresses) and connections with the expected outcome.
type policyCase struct {
	name     string
	policies string
	probes   []probe
}

// probe is one connection from a client pod to the server's port.
type probe struct {
	from  string // client, other, plain
	port  uint16 // 9000 (TCP echo) or 8080 (HTTP)
	allow bool
}

// policyEnv is the policy table's workloads: server (ns e2e-pol, sa server, node-b),
// client (e2e-pol, sa client), other (e2e-pol-other, sa other) and plain (a
// non-ambient namespace, so plaintext), all on node-a.
type policyEnv struct {
	server  *corev1.Pod
	clients map[string]*corev1.Pod
}

const (
	polNS      = "e2e-pol"
	polOtherNS = "e2e-pol-other"
	polPlainNS = "e2e-pol-plain"
)

// policyTable follows Istio's L4 AuthorizationPolicy and PeerAuthentication semantics
// (F-SEC-2, F-SEC-3).
var policyTable = []policyCase{
	{"no policy allows all, plaintext permitted", ``, []probe{{"client", 9000, true}, {"other", 9000, true}, {"plain", 9000, true}}},
	{"namespace DENY all", ap("deny-all", polNS, "DENY", "", `[{}]`), []probe{{"client", 9000, false}, {"other", 8080, false}}},
	{"ALLOW with no rules allows nothing", ap("allow-nothing", polNS, "ALLOW", "app: server", ``), []probe{{"client", 9000, false}}},
	{"ALLOW principal", ap("principal", polNS, "ALLOW", "app: server", `[{from: [{source: {principals: ["cluster.local/ns/e2e-pol/sa/client"]}}]}]`),
		[]probe{{"client", 9000, true}, {"other", 9000, false}, {"plain", 9000, false}}},
	{"ALLOW principal prefix", ap("principal", polNS, "ALLOW", "", `[{from: [{source: {principals: ["cluster.local/ns/e2e-pol-other/*"]}}]}]`),
		[]probe{{"other", 9000, true}, {"client", 9000, false}}},
	{"ALLOW namespace", ap("ns-allow", polNS, "ALLOW", "", `[{from: [{source: {namespaces: ["e2e-pol-other"]}}]}]`),
		[]probe{{"other", 9000, true}, {"client", 9000, false}}},
	{"ALLOW serviceAccounts", ap("sa", polNS, "ALLOW", "", `[{from: [{source: {serviceAccounts: ["client"]}}]}]`),
		[]probe{{"client", 9000, true}, {"other", 9000, false}}},
	{"ALLOW notPrincipals", ap("np", polNS, "ALLOW", "", `[{from: [{source: {notPrincipals: ["cluster.local/ns/e2e-pol/sa/client"]}}]}]`),
		[]probe{{"client", 9000, false}, {"other", 9000, true}}},
	{"DENY notNamespaces", ap("nn", polNS, "DENY", "", `[{from: [{source: {notNamespaces: ["e2e-pol"]}}]}]`),
		[]probe{{"other", 9000, false}, {"client", 9000, true}}},
	{"ALLOW ports", ap("ports", polNS, "ALLOW", "", `[{to: [{operation: {ports: ["9000"]}}]}]`),
		[]probe{{"client", 9000, true}, {"client", 8080, false}}},
	{"DENY ports", ap("ports", polNS, "DENY", "", `[{to: [{operation: {ports: ["8080"]}}]}]`),
		[]probe{{"client", 8080, false}, {"client", 9000, true}}},
	{"ALLOW notPorts", ap("np", polNS, "ALLOW", "", `[{to: [{operation: {notPorts: ["8080"]}}]}]`),
		[]probe{{"client", 9000, true}, {"client", 8080, false}}},
	{"ALLOW ipBlocks", ap("ip", polNS, "ALLOW", "", `[{from: [{source: {ipBlocks: ["{{client}}/32"]}}]}]`),
		[]probe{{"client", 9000, true}, {"other", 9000, false}}},
	{"DENY notIpBlocks", ap("nip", polNS, "DENY", "", `[{from: [{source: {notIpBlocks: ["{{client}}/32"]}}]}]`),
		[]probe{{"client", 9000, true}, {"other", 9000, false}}},
	{"ALLOW when source.namespace", ap("when", polNS, "ALLOW", "", `[{when: [{key: source.namespace, values: ["e2e-pol"]}]}]`),
		[]probe{{"client", 9000, true}, {"other", 9000, false}}},
	{"ALLOW when source.principal", ap("when", polNS, "ALLOW", "", `[{when: [{key: source.principal, values: ["cluster.local/ns/e2e-pol-other/sa/other"]}]}]`),
		[]probe{{"other", 9000, true}, {"client", 9000, false}}},
	{"ALLOW when source.ip notValues", ap("when", polNS, "ALLOW", "", `[{when: [{key: source.ip, notValues: ["{{client}}"]}]}]`),
		[]probe{{"client", 9000, false}, {"other", 9000, true}}},
	{"DENY when destination.port", ap("when", polNS, "DENY", "", `[{when: [{key: destination.port, values: ["9000"]}]}]`),
		[]probe{{"client", 9000, false}, {"client", 8080, true}}},
	{"ALLOW when destination.ip", ap("when", polNS, "ALLOW", "", `[{when: [{key: destination.ip, values: ["{{server}}"]}]}]`),
		[]probe{{"client", 9000, true}, {"other", 8080, true}}},
	{"root namespace DENY applies mesh-wide", ap("root-deny", "istio-system", "DENY", "", `[{from: [{source: {namespaces: ["e2e-pol-other"]}}]}]`),
		[]probe{{"other", 9000, false}, {"client", 9000, true}}},
	{"selector not matching the server", ap("sel", polNS, "DENY", "app: nobody", `[{}]`), []probe{{"client", 9000, true}}},
	{"selector matching the server", ap("sel", polNS, "DENY", "app: server", `[{}]`), []probe{{"client", 9000, false}}},
	{"ALLOW rule with an HTTP field never matches", ap("l7", polNS, "ALLOW", "", `[{to: [{operation: {methods: ["GET"]}}]}]`),
		[]probe{{"client", 8080, false}}},
	{"DENY rule with an HTTP field denies the L4 part", ap("l7", polNS, "DENY", "", `[{from: [{source: {principals: ["cluster.local/ns/e2e-pol-other/sa/other"]}}], to: [{operation: {paths: ["/admin"]}}]}]`),
		[]probe{{"other", 8080, false}, {"client", 8080, true}}},
	{"DENY wins over ALLOW", ap("allow-ns", polNS, "ALLOW", "", `[{from: [{source: {namespaces: ["e2e-pol"]}}]}]`) + "---\n" +
		ap("deny-client", polNS, "DENY", "", `[{from: [{source: {principals: ["cluster.local/ns/e2e-pol/sa/client"]}}]}]`),
		[]probe{{"client", 9000, false}}},
	{"namespace STRICT refuses plaintext", pa("strict", polNS, "", "STRICT", ""),
		[]probe{{"plain", 9000, false}, {"client", 9000, true}}},
	{"mesh STRICT from the root namespace", pa("default", "istio-system", "", "STRICT", ""),
		[]probe{{"plain", 9000, false}, {"other", 9000, true}}},
	{"namespace PERMISSIVE overrides mesh STRICT", pa("default", "istio-system", "", "STRICT", "") + "---\n" + pa("permissive", polNS, "", "PERMISSIVE", ""),
		[]probe{{"plain", 9000, true}}},
	{"workload STRICT with a port-level PERMISSIVE", pa("workload", polNS, "app: server", "STRICT", "9000: {mode: PERMISSIVE}"),
		[]probe{{"plain", 9000, true}, {"plain", 8080, false}, {"client", 8080, true}}},
}

// ap renders an AuthorizationPolicy; rules "" means no rules field. Names are quoted
// (YAML would read a bare "n" as a boolean).
func ap(name, ns, action, selector, rules string) string {
	s := fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: %q, namespace: %s}\nspec:\n  action: %s\n", name, ns, action)
	if selector != "" {
		s += "  selector: {matchLabels: {" + selector + "}}\n"
	}
	if rules != "" {
		s += "  rules: " + rules + "\n"
	}
	return s
}

// pa renders a PeerAuthentication.
func pa(name, ns, selector, mode, ports string) string {
	s := fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: %q, namespace: %s}\nspec:\n  mtls: {mode: %s}\n", name, ns, mode)
	if selector != "" {
		s += "  selector: {matchLabels: {" + selector + "}}\n"
	}
	if ports != "" {
		s += "  portLevelMtls: {" + ports + "}\n"
	}
	return s
}

// TestE2EPolicyTable applies each row's policies, waits until the server's ztunnel
// holds them, and checks every probe's outcome (a denied HBONE connection is refused
// with 401 at the server's ztunnel and reset for the client; denied plaintext is reset).
func TestE2EPolicyTable(t *testing.T) {
	ctx := setup(t, 10*time.Minute)
	pe := startPolicyEnv(ctx, t)
	for _, tc := range policyTable {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.NewReplacer("{{client}}", pe.clients["client"].Status.PodIP, "{{server}}", pe.server.Status.PodIP).Replace(tc.policies)
			if doc != "" {
				applyYAML(ctx, t, doc)
				if err := waitPolicy(ctx, "node-b", policyNames(doc)...); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range tc.probes {
				if err := pe.expect(ctx, p); err != nil {
					t.Error(err)
				}
			}
			if doc != "" {
				deleteYAML(ctx, t, doc)
				if err := waitPolicyGone(ctx, "node-b", policyNames(doc)...); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// startPolicyEnv creates the table's namespaces and pods.
func startPolicyEnv(ctx context.Context, t *testing.T) *policyEnv {
	t.Helper()
	pe := startPolicyEnvIn(ctx, t, polNS)
	newNamespace(ctx, t, polOtherNS, true)
	newNamespace(ctx, t, polPlainNS, false)
	pe.clients["other"] = sleeper(ctx, t, polOtherNS, "other", "node-a")
	pe.clients["plain"] = sleeper(ctx, t, polPlainNS, "plain", "node-a")
	if err := served(ctx, "node-a", polOtherNS, 1); err != nil {
		t.Fatal(err)
	}
	return pe
}

// startPolicyEnvIn creates an ambient namespace with the server (node-b) and client
// (node-a) pods, both served by their ztunnels.
func startPolicyEnvIn(ctx context.Context, t *testing.T, ns string) *policyEnv {
	t.Helper()
	newNamespace(ctx, t, ns, true)
	pe := &policyEnv{server: echoServer(ctx, t, ns, "server", "node-b"), clients: map[string]*corev1.Pod{
		"client": sleeper(ctx, t, ns, "client", "node-a"),
	}}
	for node, n := range map[string]int{"node-b": 1, "node-a": 1} {
		if err := served(ctx, node, ns, n); err != nil {
			t.Fatal(err)
		}
	}
	return pe
}

// expect checks one probe, retrying briefly: a policy reaches the server's ztunnel
// with the workload's policy list in the same push, but the probe must see both.
func (pe *policyEnv) expect(ctx context.Context, p probe) error {
	from := pe.clients[p.from]
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return testbed.Poll(ctx, fmt.Sprintf("%s → server:%d allowed=%v", p.from, p.port, p.allow), func(ctx context.Context) (bool, error) {
		err := pe.connect(ctx, from, p.port)
		if err != nil && (strings.Contains(err.Error(), "i/o timeout") || strings.Contains(err.Error(), "Client.Timeout")) {
			// A denial is a prompt 401 or reset; a hang is a fault, not a denial.
			return false, fmt.Errorf("connection hung: %v", err)
		}
		return (err == nil) == p.allow, fmt.Errorf("connection error: %v", err)
	})
}

// connect makes one exchange from the pod to the server's port: TCP echo on 9000, an
// HTTP GET on 8080.
func (pe *policyEnv) connect(ctx context.Context, from *corev1.Pod, port uint16) error {
	if port == 9000 {
		_, err := tcpEcho(ctx, from, podAddr(pe.server, 9000))
		return err
	}
	sb, err := env.Sandbox(from.Namespace, from.Name)
	if err != nil {
		return err
	}
	out, err := sb.Run(ctx, bin("ambit-echo"), "http", "--url", "http://"+podAddr(pe.server, port)+"/", "--timeout", "3s")
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// policyNames lists the Authorization resources the documents become on ztunnel:
// "ns/name" per AuthorizationPolicy, and Istio's static STRICT policy or the converted
// workload policy for PeerAuthentications.
func policyNames(doc string) []string {
	var names []string
	for _, d := range strings.Split(doc, "---\n") {
		var kind, name, ns string
		for _, line := range strings.Split(d, "\n") {
			if k, ok := strings.CutPrefix(line, "kind: "); ok {
				kind = k
			}
			if m, ok := strings.CutPrefix(line, "metadata: {name: "); ok {
				name, ns, _ = strings.Cut(strings.TrimSuffix(m, "}"), ", namespace: ")
				name = strings.Trim(name, `"`)
			}
		}
		switch {
		case kind == "AuthorizationPolicy":
			names = append(names, ns+"/"+name)
		case kind == "PeerAuthentication" && strings.Contains(d, "portLevelMtls"):
			names = append(names, ns+"/converted_peer_authentication_"+name)
		case kind == "PeerAuthentication" && strings.Contains(d, "STRICT"):
			names = append(names, "istio-system/istio_converted_static_strict")
		}
	}
	return names
}
