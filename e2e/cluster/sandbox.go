package cluster

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
)

// AddSandbox creates an empty pod sandbox on the node, as a container runtime does
// before it calls CNI: the namespace /run/netns/<RunID>-pod-<namespace>-<name> with
// nothing configured (not even lo) and the cgroup <CgroupRoot>/kubepods/pod<uid>. The
// primary CNI plugin then creates eth0; record the address it assigned with SetIP. uid
// is the Pod object's UID. (namespace, name) must be unique among live pods.
func (n *Node) AddSandbox(namespace, name, uid string) (*Pod, error) {
	return n.addPod(namespace, name, uid, nil)
}

// SetIP records the address the primary CNI plugin gave the pod's eth0.
func (p *Pod) SetIP(ip netip.Addr) {
	p.Node.c.mu.Lock()
	defer p.Node.c.mu.Unlock()
	p.IP = ip
}

// Remove tears a pod down as a runtime does after CNI DEL: it kills every process in
// the pod's cgroup and namespace, then removes the cgroup and the namespace (and with it
// the pod's end of any veth). Processes the caller started with Start should be stopped
// first for a graceful exit. Removing a pod twice is not an error.
func (p *Pod) Remove() error {
	c := p.Node.c
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.pods, p)
	if i < 0 {
		return nil
	}
	var errs []error
	if err := killCgroupTree(p.CgroupDir); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroupTree(p.CgroupDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := deleteNetns(p.NetnsPath); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	c.pods = slices.Delete(c.pods, i, i+1)
	c.led.Netns = slices.DeleteFunc(c.led.Netns, func(s string) bool { return s == p.NetnsPath })
	if err := c.led.save(c.ledgerDir); err != nil {
		return fmt.Errorf("remove pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}
