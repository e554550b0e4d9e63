// Package redirect holds Ambit's per-pod TCP redirection eBPF programs (redirect.c,
// compiled by bpf2go) and a small loader around them. The design follows
// shared/spec/redirection.md: a cgroup/connect4 program marks an enrolled app's TCP
// sockets so policy routing sends them through a "local everything" table, and an
// sk_lookup program in the pod network namespace hands those SYNs, and inbound SYNs
// from the network, to ztunnel's in-pod listeners held in a SOCKMAP.
//
// One collection is loaded per pod, so every map here belongs to a single pod.
package redirect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// Keys of the listener SOCKMAP (values are socket fds on update, cookies on lookup).
// ztunnel puts its 15001 listener at SockMapKeyOutbound and its 15006 listener at
// SockMapKeyInbound; redirect.c reads the same keys.
const (
	SockMapKeyOutbound uint32 = 0
	SockMapKeyInbound  uint32 = 1
)

// MaxProbeSources is how many node/probe source addresses the config holds; SYNs from
// these addresses to the pod bypass ztunnel (kubelet health probes).
const MaxProbeSources = 4

// ErrBadConfig is returned (wrapped) when a Config cannot be expressed in the
// program's config map.
var ErrBadConfig = errors.New("invalid redirect config")

// Config is the per-pod configuration the programs read from their config map.
type Config struct {
	// PodIP is the pod's IPv4 address (IPv4 only; IPv6 is not redirected yet).
	PodIP netip.Addr
	// LoIfindex is the ifindex of lo inside the pod network namespace (1 on Linux).
	LoIfindex int
	// Mark is the SO_MARK connect4 puts on captured sockets (wire.MarkCapture);
	// zero disables marking.
	Mark uint32
	// HBONEPort is the inbound port left to ztunnel's own listener (wire.PortHBONE).
	HBONEPort uint16
	// ProbeSources are up to MaxProbeSources IPv4 addresses (node, kubelet) whose
	// SYNs reach the app directly.
	ProbeSources []netip.Addr
}

// marshal converts c to the kernel layout, network byte order for addresses.
func (c Config) marshal() (bpfConfig, error) {
	var out bpfConfig
	if !c.PodIP.Unmap().Is4() || c.PodIP.Unmap().IsUnspecified() {
		return out, fmt.Errorf("%w: pod IP %v is not a usable IPv4 address", ErrBadConfig, c.PodIP)
	}
	if c.LoIfindex <= 0 {
		return out, fmt.Errorf("%w: lo ifindex %d", ErrBadConfig, c.LoIfindex)
	}
	if c.HBONEPort == 0 {
		return out, fmt.Errorf("%w: HBONE port is zero", ErrBadConfig)
	}
	if len(c.ProbeSources) > MaxProbeSources {
		return out, fmt.Errorf("%w: %d probe sources, at most %d", ErrBadConfig, len(c.ProbeSources), MaxProbeSources)
	}
	out.PodIp = ipv4NetworkOrder(c.PodIP)
	out.LoIfindex = uint32(c.LoIfindex)
	out.Mark = c.Mark
	out.HbonePort = uint32(c.HBONEPort)
	for i, a := range c.ProbeSources {
		if !a.Unmap().Is4() || a.Unmap().IsUnspecified() {
			return out, fmt.Errorf("%w: probe source %v is not a usable IPv4 address", ErrBadConfig, a)
		}
		out.ProbeIps[i] = ipv4NetworkOrder(a)
	}
	return out, nil
}

// ipv4NetworkOrder returns a as the uint32 whose in-memory bytes are the address in
// network order, as the kernel stores __be32 fields.
func ipv4NetworkOrder(a netip.Addr) uint32 {
	b := a.Unmap().As4()
	return binary.NativeEndian.Uint32(b[:])
}

// WriteConfig stores c in a program config map (the ConfigMap of Objects, or a
// re-opened pinned copy). Errors wrap ErrBadConfig for invalid input.
func WriteConfig(m *ebpf.Map, c Config) error {
	v, err := c.marshal()
	if err != nil {
		return err
	}
	if err := m.Update(uint32(0), &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write redirect config: %w", err)
	}
	return nil
}

// Objects are one pod's loaded programs and maps. The caller owns them and must Close
// them; pinned links keep the programs (and through them the maps) alive after Close.
type Objects struct {
	SkLookup  *ebpf.Program // sk_lookup, attach with link.AttachNetNs
	Connect4  *ebpf.Program // cgroup/connect4, attach with link.AttachCgroup
	ConfigMap *ebpf.Map     // ARRAY[1] of the config; see WriteConfig
	Listeners *ebpf.Map     // SOCKMAP[2]; see SockMapKeyOutbound/Inbound
}

// Load loads a fresh copy of the programs and maps into the kernel (needs
// CAP_BPF + CAP_NET_ADMIN). It does not attach anything.
func Load() (*Objects, error) {
	var objs bpfObjects
	if err := loadBpfObjects(&objs, nil); err != nil {
		return nil, fmt.Errorf("load redirect programs: %w", err)
	}
	return &Objects{
		SkLookup:  objs.AmbitSkLookup,
		Connect4:  objs.AmbitConnect4,
		ConfigMap: objs.ConfigMap,
		Listeners: objs.Listeners,
	}, nil
}

// Close releases the file descriptors; attached and pinned objects stay in the kernel.
func (o *Objects) Close() error {
	return errors.Join(o.SkLookup.Close(), o.Connect4.Close(), o.ConfigMap.Close(), o.Listeners.Close())
}
