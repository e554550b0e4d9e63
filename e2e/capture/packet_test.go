package capture

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
)

// tcpSegment builds a TCP header (20 bytes, or 32 with options) plus payload.
func tcpSegment(sport, dport uint16, opts bool, payload string) []byte {
	hl := 20
	if opts {
		hl = 32
	}
	b := make([]byte, hl, hl+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	b[12] = byte(hl/4) << 4
	return append(b, payload...)
}

func udpDatagram(sport, dport uint16, payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint16(b[4:6], uint16(8+len(payload)))
	return append(b, payload...)
}

func ipv4(proto uint8, src, dst string, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(20+len(l4)))
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	return append(b, l4...)
}

func ipv6(next uint8, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:6], uint16(len(l4)))
	b[6] = next
	s, d := netip.MustParseAddr("fd00::1").As16(), netip.MustParseAddr("fd00::2").As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return append(b, l4...)
}

func TestSummaryAdd(t *testing.T) {
	fragment := ipv4(6, "10.0.0.1", "10.0.0.2", tcpSegment(1, 2, false, "x"))
	binary.BigEndian.PutUint16(fragment[6:8], 10) // fragment offset 10
	hopByHop := append([]byte{6, 0, 0, 0, 0, 0, 0, 0}, tcpSegment(4000, 15008, false, "v6-ext")...)
	s := newSummary()
	for _, pkt := range [][]byte{
		ipv4(6, "10.20.1.2", "10.20.2.2", tcpSegment(40000, 9000, false, "")),          // SYN, no payload
		ipv4(6, "10.20.1.2", "10.20.2.2", tcpSegment(40000, 9000, true, "hello MAR")),  // options
		ipv4(6, "10.20.1.2", "10.20.2.2", tcpSegment(40000, 9000, false, "KER world")), // marker split
		ipv4(6, "10.20.2.2", "10.20.1.2", tcpSegment(9000, 40000, false, "reply")),
		ipv4(17, "10.20.1.2", "10.96.0.10", udpDatagram(5353, 53, "dns")),
		ipv6(6, tcpSegment(4000, 15008, false, "v6")),
		ipv6(0, hopByHop),
		ipv6(17, udpDatagram(1, 53, "")),
		ipv4(1, "10.0.0.1", "10.0.0.2", []byte{8, 0, 0, 0}), // ICMP
		fragment,
		{0x45, 0, 0}, // short
		{0x00},       // not IP (e.g. ARP body)
		ipv4(6, "1.1.1.1", "2.2.2.2", []byte{0, 1, 0, 2}), // short TCP
	} {
		s.add(pkt)
	}
	want := map[FlowKey]int{{ProtoTCP, 9000}: 3, {ProtoTCP, 40000}: 1, {ProtoUDP, 53}: 2, {ProtoTCP, 15008}: 2}
	if len(s.Packets) != len(want) {
		t.Errorf("Packets = %v, want %v", s.Packets, want)
	}
	for k, v := range want {
		if s.Packets[k] != v {
			t.Errorf("Packets[%v] = %d, want %d", k, s.Packets[k], v)
		}
	}
	if s.Total != 13 || s.Other != 5 {
		t.Errorf("Total %d Other %d, want 13 and 5", s.Total, s.Other)
	}
	if got := s.PayloadPorts(); !slices.Equal(got, []uint16{9000, 15008, 40000}) {
		t.Errorf("PayloadPorts = %v", got)
	}
	if s.TCPPayload[9000] != 18 {
		t.Errorf("TCPPayload[9000] = %d, want 18", s.TCPPayload[9000])
	}
	for _, tc := range []struct {
		marker string
		want   bool
	}{
		{"MARKER", true}, // across two segments of one stream
		{"v6-ext", true}, // after an IPv6 extension header
		{"hello MARKER world", true},
		{"KER worldreply", false}, // never across directions
		{"dns", false},            // UDP is not searched
		{"absent", false},
		{"", false},
	} {
		t.Run(tc.marker, func(t *testing.T) {
			if got := s.Contains([]byte(tc.marker)); got != tc.want {
				t.Errorf("Contains(%q) = %v, want %v", tc.marker, got, tc.want)
			}
		})
	}
}

func TestSummaryLimits(t *testing.T) {
	s := newSummary()
	chunk := string(make([]byte, 60000))
	for i := 0; s.kept < maxStreamBytes; i++ {
		s.add(ipv4(6, "10.0.0.1", "10.0.0.2", tcpSegment(1, 2, false, chunk)))
	}
	s.add(ipv4(6, "10.0.0.1", "10.0.0.2", tcpSegment(1, 2, false, "LATE")))
	if !s.Clipped || s.Contains([]byte("LATE")) || s.kept != maxStreamBytes {
		t.Fatalf("Clipped %v kept %d", s.Clipped, s.kept)
	}
	// Another stream still has room.
	s.add(ipv4(6, "10.0.0.3", "10.0.0.2", tcpSegment(1, 2, false, "OTHER")))
	if !s.Contains([]byte("OTHER")) {
		t.Fatal("second stream not kept")
	}
}

func FuzzSummaryAdd(f *testing.F) {
	f.Add(ipv4(6, "10.20.1.2", "10.20.2.2", tcpSegment(40000, 9000, true, "hello")))
	f.Add(ipv6(0, append([]byte{6, 0, 0, 0, 0, 0, 0, 0}, tcpSegment(1, 2, false, "x")...)))
	f.Add(ipv6(44, append([]byte{17, 0, 0, 0, 0, 0, 0, 0}, udpDatagram(1, 2, "x")...)))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		s := newSummary()
		s.add(pkt)
		n := 0
		for _, v := range s.Packets {
			n += v
		}
		if s.Total != 1 || n+s.Other != 1 {
			t.Fatalf("packet counted %d+%d times", n, s.Other)
		}
	})
}
