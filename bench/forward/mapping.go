package forward

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ErrBadMapping is wrapped by every error of ParseMapping.
var ErrBadMapping = errors.New("bad forward mapping")

// Mapping is one forward: connections accepted on Listen are carried to Target. Both
// are host:port; Listen's host may be empty (every address), Target's may not.
type Mapping struct {
	Listen, Target string
}

// String is the flag form, "listen=target".
func (m Mapping) String() string { return m.Listen + "=" + m.Target }

// ParseMapping parses "listen=target", e.g. "127.0.0.1:8080=10.20.1.2:28080" or
// ":28080=10.20.1.2:8080". Ports must be 1-65535 and the target needs a host; else the
// error wraps ErrBadMapping.
func ParseMapping(s string) (Mapping, error) {
	listen, target, ok := strings.Cut(s, "=")
	if !ok {
		return Mapping{}, fmt.Errorf("%w %q: want listen=target", ErrBadMapping, s)
	}
	if err := checkAddr(listen, false); err != nil {
		return Mapping{}, fmt.Errorf("%w %q: listen: %w", ErrBadMapping, s, err)
	}
	if err := checkAddr(target, true); err != nil {
		return Mapping{}, fmt.Errorf("%w %q: target: %w", ErrBadMapping, s, err)
	}
	return Mapping{Listen: listen, Target: target}, nil
}

func checkAddr(addr string, target bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if target && host == "" {
		return errors.New("missing host")
	}
	if strings.ContainsAny(host, "= \t") {
		return fmt.Errorf("bad host %q", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || target && n == 0 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// Mappings is a repeatable flag.Value of Mapping.
type Mappings []Mapping

// String joins the mappings with commas.
func (ms *Mappings) String() string {
	parts := make([]string, len(*ms))
	for i, m := range *ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, ",")
}

// Set parses one "listen=target" and appends it; errors wrap ErrBadMapping.
func (ms *Mappings) Set(s string) error {
	m, err := ParseMapping(s)
	if err != nil {
		return err
	}
	*ms = append(*ms, m)
	return nil
}
