package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
)

// ErrInvalidName is returned when a cluster, node, namespace or pod name is
// not a lowercase DNS-1123 style name (letters, digits, '-' and '.', at most
// 40 characters, starting and ending with a letter or digit).
var ErrInvalidName = errors.New("invalid name")

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,38}[a-z0-9])?$`)

// validName checks a user supplied name before it becomes part of a
// namespace file name or a cgroup directory.
func validName(kind, name string) error {
	if !nameRE.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%s %q: %w", kind, name, ErrInvalidName)
	}
	return nil
}

// randomHex returns n random bytes hex encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// newRunID makes "<name>-<6 hex>", unique per run.
func newRunID(name string) string { return name + "-" + randomHex(3) }

// newUUID returns a random (version 4) UUID string, the shape kubelet uses
// for pod UIDs.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Address plan of the topology in notes/contracts.md.
var (
	fabricPrefix = netip.MustParsePrefix("10.10.0.0/24")
	// FabricGateway is the fabric bridge address, where istiod-lite listens.
	FabricGateway = netip.MustParseAddr("10.10.0.1")
)

// maxNodes bounds node indexes so that 10.10.0.(10+n) and 10.20.n.0/24 stay valid.
const maxNodes = 200

// maxPodsPerNode is the number of pod addresses in a /24 after the gateway (.1).
const maxPodsPerNode = 253

// nodeAddrs returns the fabric IP, pod CIDR and pod gateway of node index
// idx (1-based): 10.10.0.(10+idx), 10.20.idx.0/24, 10.20.idx.1.
func nodeAddrs(idx int) (ip netip.Addr, cidr netip.Prefix, gw netip.Addr, err error) {
	if idx < 1 || idx > maxNodes {
		return ip, cidr, gw, fmt.Errorf("node index %d out of range 1..%d", idx, maxNodes)
	}
	ip = netip.AddrFrom4([4]byte{10, 10, 0, byte(10 + idx)})
	cidr = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 20, byte(idx), 0}), 24)
	gw = netip.AddrFrom4([4]byte{10, 20, byte(idx), 1})
	return ip, cidr, gw, nil
}

// podAddr returns the k-th (0-based) pod address of a node's CIDR: .2, .3, ...
func podAddr(cidr netip.Prefix, k int) (netip.Addr, error) {
	if k < 0 || k >= maxPodsPerNode {
		return netip.Addr{}, fmt.Errorf("pod index %d out of range: the node's %s is full", k, cidr)
	}
	b := cidr.Addr().As4()
	b[3] = byte(2 + k)
	return netip.AddrFrom4(b), nil
}
