package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// nfMsgType is the netlink message type of an nf_tables command.
func nfMsgType(cmd uint16) uint16 { return unix.NFNL_SUBSYS_NFTABLES<<8 | cmd }

// nfMessage builds one netfilter netlink message: nlmsghdr, nfgenmsg
// (family, version 0, res_id big-endian) and pre-encoded attributes.
func nfMessage(typ, flags uint16, seq uint32, family uint8, resID uint16, attrs []byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+4, unix.NLMSG_HDRLEN+4+len(attrs))
	b = append(b, attrs...)
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], flags)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	b[16], b[17] = family, unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(b[18:20], resID)
	return b
}

// nlAttr encodes one netlink attribute with padding to 4 bytes.
func nlAttr(typ uint16, data []byte) []byte {
	n := 4 + len(data)
	b := make([]byte, (n+3)&^3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(n))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[4:], data)
	return b
}

// familyName names the nf_tables address families (NFPROTO_*).
func familyName(f uint8) string {
	switch f {
	case unix.NFPROTO_INET:
		return "inet"
	case unix.NFPROTO_IPV4:
		return "ip"
	case unix.NFPROTO_ARP:
		return "arp"
	case unix.NFPROTO_NETDEV:
		return "netdev"
	case unix.NFPROTO_BRIDGE:
		return "bridge"
	case unix.NFPROTO_IPV6:
		return "ip6"
	}
	return fmt.Sprintf("family%d", f)
}

// parseTableDump parses one buffer of an NFT_MSG_GETTABLE dump reply. It
// returns the tables as "<family> <name>", whether the dump is complete
// (NLMSG_DONE), and the kernel's error (NLMSG_ERROR) as a syscall.Errno.
// Malformed input is an error, never a panic.
func parseTableDump(b []byte) (tables []string, done bool, err error) {
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return tables, false, errors.New("short netlink header")
		}
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return tables, false, fmt.Errorf("bad netlink message length %d", l)
		}
		body := b[unix.NLMSG_HDRLEN:l]
		b = b[min((l+3)&^3, len(b)):]
		switch typ {
		case unix.NLMSG_DONE:
			return tables, true, nil
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return tables, false, errors.New("short netlink error")
			}
			if e := int32(binary.NativeEndian.Uint32(body[0:4])); e != 0 {
				return tables, false, syscall.Errno(-e)
			}
			return tables, true, nil // an ACK
		case nfMsgType(unix.NFT_MSG_NEWTABLE):
			if len(body) < 4 {
				return tables, false, errors.New("short nfgenmsg")
			}
			name, err := attrString(body[4:], unix.NFTA_TABLE_NAME)
			if err != nil {
				return tables, false, err
			}
			tables = append(tables, familyName(body[0])+" "+name)
		}
	}
	return tables, false, nil
}

// attrString finds attribute typ in a run of netlink attributes and returns
// it as a NUL-terminated string.
func attrString(b []byte, typ uint16) (string, error) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4]) & 0x3fff // drop NLA_F_NESTED / NLA_F_NET_BYTEORDER
		if l < 4 || l > len(b) {
			return "", fmt.Errorf("bad netlink attribute length %d", l)
		}
		if t == typ {
			v := b[4:l]
			for i, c := range v {
				if c == 0 {
					v = v[:i]
					break
				}
			}
			return string(v), nil
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return "", fmt.Errorf("attribute %d missing", typ)
}

// nftTables lists the nf_tables tables of the calling thread's network
// namespace with an NFT_MSG_GETTABLE dump over NETLINK_NETFILTER (what
// `nft list tables` asks the kernel). A kernel without nfnetlink or
// nf_tables has no tables.
func nftTables() ([]string, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netfilter netlink socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 5}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("bind netfilter netlink: %w", err)
	}
	req := nfMessage(nfMsgType(unix.NFT_MSG_GETTABLE), unix.NLM_F_REQUEST|unix.NLM_F_DUMP, 1, unix.AF_UNSPEC, 0, nil)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("request nftables tables: %w", err)
	}
	buf := make([]byte, 1<<20)
	var all []string
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("read nftables tables: %w", err)
		}
		tables, done, err := parseTableDump(buf[:n])
		all = append(all, tables...)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPROTONOSUPPORT) {
			return nil, nil // nf_tables not in this kernel
		}
		if err != nil {
			return nil, fmt.Errorf("read nftables tables: %w", err)
		}
		if done {
			return all, nil
		}
	}
}
