package hbone

import (
	"fmt"
	"net/netip"
)

// ParseAuthority parses a CONNECT :authority, which HBONE requires to be a literal
// "ip:port" ("[v6]:port" for IPv6): no host names, no zones, no port 0. IPv4-mapped
// IPv6 addresses are returned as written. The error wraps ErrBadRequest, so a server
// answers 400.
func ParseAuthority(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("parse authority %q: %w: want ip:port", s, ErrBadRequest)
	}
	if ap.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("parse authority %q: %w: zone not allowed", s, ErrBadRequest)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("parse authority %q: %w: port 0", s, ErrBadRequest)
	}
	return ap, nil
}
