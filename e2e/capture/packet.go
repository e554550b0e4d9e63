package capture

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
)

// Protocol names used in FlowKey.
const (
	ProtoTCP = "tcp"
	ProtoUDP = "udp"
)

// Stream limits bound the payload a Summary keeps for Contains.
const (
	maxStreamBytes = 4 << 20
	maxTotalBytes  = 64 << 20
)

// FlowKey groups packets by transport protocol and destination port.
type FlowKey struct {
	Proto   string // ProtoTCP or ProtoUDP
	DstPort uint16
}

// Summary is what a Capture saw between Start and Stop.
type Summary struct {
	// Packets counts TCP and UDP packets per (protocol, destination port),
	// both directions of the link.
	Packets map[FlowKey]int
	// TCPPayload counts TCP payload bytes per destination port; its keys
	// are the TCP destination ports that carried payload.
	TCPPayload map[uint16]int
	// Total counts every packet read, Other those that were not TCP or UDP
	// over IPv4/IPv6 (ARP, ICMP, non-first fragments, ...).
	Total, Other int
	// Truncated counts packets larger than the read buffer; Dropped is the
	// kernel's count of packets lost because the socket queue was full;
	// Clipped is true when payload beyond the stream limits was not kept
	// for Contains.
	Truncated int
	Dropped   uint32
	Clipped   bool

	streams map[streamKey][]byte
	kept    int
}

type streamKey struct {
	src, dst netip.AddrPort
}

func newSummary() *Summary {
	return &Summary{Packets: map[FlowKey]int{}, TCPPayload: map[uint16]int{}, streams: map[streamKey][]byte{}}
}

// Contains reports whether marker appears in the TCP payload seen: in one
// packet or across consecutive segments of one direction of a connection
// (payload is concatenated in arrival order; a marker split across
// reordered or retransmitted segments may be missed). An empty marker is
// never contained.
func (s *Summary) Contains(marker []byte) bool {
	if len(marker) == 0 {
		return false
	}
	for _, b := range s.streams {
		if bytes.Contains(b, marker) {
			return true
		}
	}
	return false
}

// PayloadPorts returns the sorted TCP destination ports that carried payload.
func (s *Summary) PayloadPorts() []uint16 {
	ports := make([]uint16, 0, len(s.TCPPayload))
	for p := range s.TCPPayload {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports
}

// add accounts one packet that starts at its IP header.
func (s *Summary) add(pkt []byte) {
	s.Total++
	proto, src, dst, payload, ok := parseIP(pkt)
	if !ok {
		s.Other++
		return
	}
	switch proto {
	case 6: // TCP
		if len(payload) < 20 {
			s.Other++
			return
		}
		off := int(payload[12]>>4) * 4
		if off < 20 || off > len(payload) {
			s.Other++
			return
		}
		sp, dp := binary.BigEndian.Uint16(payload[0:2]), binary.BigEndian.Uint16(payload[2:4])
		s.Packets[FlowKey{ProtoTCP, dp}]++
		data := payload[off:]
		if len(data) > 0 {
			s.TCPPayload[dp] += len(data)
			s.keep(streamKey{netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)}, data)
		}
	case 17: // UDP
		if len(payload) < 8 {
			s.Other++
			return
		}
		s.Packets[FlowKey{ProtoUDP, binary.BigEndian.Uint16(payload[2:4])}]++
	default:
		s.Other++
	}
}

func (s *Summary) keep(k streamKey, data []byte) {
	room := min(maxStreamBytes-len(s.streams[k]), maxTotalBytes-s.kept)
	if room < len(data) {
		s.Clipped = true
		data = data[:max(room, 0)]
	}
	s.streams[k] = append(s.streams[k], data...)
	s.kept += len(data)
}

// parseIP returns the transport protocol, addresses and transport bytes of
// an IPv4 or IPv6 packet. Non-first fragments and malformed packets give ok=false.
func parseIP(pkt []byte) (proto uint8, src, dst netip.Addr, payload []byte, ok bool) {
	if len(pkt) < 1 {
		return 0, src, dst, nil, false
	}
	switch pkt[0] >> 4 {
	case 4:
		return parseIPv4(pkt)
	case 6:
		return parseIPv6(pkt)
	}
	return 0, src, dst, nil, false
}

func parseIPv4(pkt []byte) (proto uint8, src, dst netip.Addr, payload []byte, ok bool) {
	if len(pkt) < 20 {
		return 0, src, dst, nil, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if total == 0 || total > len(pkt) { // 0: GSO super-packet; >len: truncated read
		total = len(pkt)
	}
	if ihl < 20 || ihl > total {
		return 0, src, dst, nil, false
	}
	if binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 { // fragment offset
		return 0, src, dst, nil, false
	}
	src = netip.AddrFrom4([4]byte(pkt[12:16]))
	dst = netip.AddrFrom4([4]byte(pkt[16:20]))
	return pkt[9], src, dst, pkt[ihl:total], true
}

func parseIPv6(pkt []byte) (proto uint8, src, dst netip.Addr, payload []byte, ok bool) {
	if len(pkt) < 40 {
		return 0, src, dst, nil, false
	}
	plen := int(binary.BigEndian.Uint16(pkt[4:6]))
	end := 40 + plen
	if plen == 0 || end > len(pkt) {
		end = len(pkt)
	}
	src = netip.AddrFrom16([16]byte(pkt[8:24]))
	dst = netip.AddrFrom16([16]byte(pkt[24:40]))
	next, off := pkt[6], 40
	for range 8 { // bounded walk over extension headers
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if off+8 > end {
				return 0, src, dst, nil, false
			}
			next, off = pkt[off], off+(int(pkt[off+1])+1)*8
		case 44: // fragment
			if off+8 > end || binary.BigEndian.Uint16(pkt[off+2:off+4])&0xfff8 != 0 {
				return 0, src, dst, nil, false
			}
			next, off = pkt[off], off+8
		default:
			if off > end {
				return 0, src, dst, nil, false
			}
			return next, src, dst, pkt[off:end], true
		}
	}
	return 0, src, dst, nil, false
}
