package cluster

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// AddSandbox creates an empty pod sandbox on the node, as a container runtime does
// before it calls CNI: the namespace /run/netns/<RunID>-pod-<namespace>-<name> with
// nothing configured (not even lo) and the cgroup <CgroupRoot>/kubepods/pod<uid>. The
// primary CNI plugin then creates eth0; record the address it assigned with SetIP. uid
// is the Pod object's UID. (namespace, name) must be unique among live pods.
func (n *Node) AddSandbox(namespace, name, uid string) (*Pod, error) {
	if err := validName("namespace", namespace); err != nil {
		return nil, fmt.Errorf("add sandbox: %w", err)
	}
	if err := validName("pod", name); err != nil {
		return nil, fmt.Errorf("add sandbox: %w", err)
	}
	if uid == "" || filepath.Base(uid) != uid {
		return nil, fmt.Errorf("add sandbox %s/%s: bad uid %q", namespace, name, uid)
	}
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	for _, p := range c.pods {
		if p.Namespace == namespace && p.Name == name {
			return nil, fmt.Errorf("add sandbox %s/%s: already exists", namespace, name)
		}
	}
	p := &Pod{
		Name: name, Namespace: namespace, UID: uid, ContainerID: randomHex(32),
		NetnsPath: filepath.Join(NetnsDir, c.RunID+"-pod-"+namespace+"-"+name),
		CgroupDir: filepath.Join(c.CgroupRoot, "kubepods", "pod"+uid),
		Node:      n,
	}
	if err := os.Mkdir(p.CgroupDir, 0o755); err != nil {
		return nil, fmt.Errorf("add sandbox %s/%s: create cgroup: %w", namespace, name, err)
	}
	if err := c.createNetnsLocked(p.NetnsPath); err != nil {
		return nil, fmt.Errorf("add sandbox %s/%s: %w", namespace, name, err)
	}
	c.pods = append(c.pods, p)
	return p, nil
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
