package capture

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ambitmesh/ambit/e2e/cluster"
)

// ErrPacketFilterRules is returned (wrapped) by NoPacketFilterRules when a
// namespace has iptables or nftables tables.
var ErrPacketFilterRules = errors.New("packet filter tables present")

// legacyTableFiles are the per-namespace lists of registered x_tables
// (iptables, ip6tables, arptables legacy backends). Since Linux 5.x a table
// is instantiated in a namespace only when something uses it, so a fresh
// namespace lists none; a missing file means the backend is not built in.
var legacyTableFiles = []string{"ip_tables_names", "ip6_tables_names", "arp_tables_names"}

// NoPacketFilterRules checks, in each namespace, that no packet filter
// table exists: no legacy x_tables table (/proc/thread-self/net/
// ip_tables_names, ip6_tables_names, arp_tables_names are absent or empty)
// and no nf_tables table (an NFT_MSG_GETTABLE netlink dump, the request
// behind `nft list tables`, so no nft binary is needed; iptables-nft rules
// live in nf_tables and are caught here). With no table there is no rule
// of any kind. It returns an error wrapping ErrPacketFilterRules that
// names each namespace and table found, or the first failure to check.
func NoPacketFilterRules(netnsPaths ...string) error {
	var found []string
	for _, ns := range netnsPaths {
		var tables []string
		err := cluster.InNetns(ns, func() error {
			var err error
			tables, err = filterTables()
			return err
		})
		if err != nil {
			return fmt.Errorf("check packet filter rules in %s: %w", ns, err)
		}
		for _, t := range tables {
			found = append(found, ns+": "+t)
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("%w: %s", ErrPacketFilterRules, strings.Join(found, "; "))
	}
	return nil
}

// filterTables lists the tables of the calling thread's namespace.
func filterTables() ([]string, error) {
	var tables []string
	for _, f := range legacyTableFiles {
		data, err := os.ReadFile("/proc/thread-self/net/" + f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		for _, name := range strings.Fields(string(data)) {
			tables = append(tables, "legacy "+strings.TrimSuffix(f, "_names")+" "+name)
		}
	}
	nft, err := nftTables()
	if err != nil {
		return nil, err
	}
	for _, t := range nft {
		tables = append(tables, "nftables "+t)
	}
	return tables, nil
}
