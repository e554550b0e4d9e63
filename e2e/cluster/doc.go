// Package cluster builds the local "cluster" the demo, the benchmark and the
// end-to-end tests share: network namespaces for a fabric, nodes and pods,
// joined by bridges and veths, plus one cgroup v2 directory per pod, exactly
// as the topology in notes/contracts.md describes.
//
// Layout (n is the 1-based node index):
//
//	fabric netns  "<run>-fabric": bridge br0 10.10.0.1/24
//	node netns    "<run>-<node>": eth0 10.10.0.(10+n)/24 (veth into br0),
//	              bridge cni0 10.20.n.1/24, ip_forward=1, a route to every
//	              other node's pod CIDR via that node's fabric IP
//	pod netns     "<run>-pod-<ns>-<name>": eth0 10.20.n.k/24 (veth into cni0),
//	              default via 10.20.n.1, lo up
//	pod cgroup    <CgroupRoot>/kubepods/pod<uid>/ (kubelet cgroupfs layout)
//
// No link is ever created in the machine's root network namespace: every
// veth is made inside a namespace the cluster owns, so deleting the
// namespaces removes all links. The run ID (name plus a short random suffix)
// prefixes every namespace and the cgroup root, so parallel runs never
// collide; each run keeps a ledger under /run/ambit-e2e so that Close and
// CleanupStale can undo everything a run made, even after a crash.
//
// Processes run in a node or the fabric with `nsenter --net=<netns> --`
// (not `ip netns exec`, which remounts /sys and hides the host cgroup and
// bpf filesystems); pod processes also start inside the pod cgroup from
// their first instruction (clone3 CLONE_INTO_CGROUP via
// syscall.SysProcAttr.UseCgroupFD).
//
// Everything here needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
package cluster
