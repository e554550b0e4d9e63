package caserver

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// ErrMalformedAccount is wrapped by ParseAccounts for an entry that is not
// "<namespace>/<serviceaccount>".
var ErrMalformedAccount = errors.New("malformed service account")

// ParseAccounts parses a comma-separated list of "<namespace>/<serviceaccount>", the
// shape of --trusted-node-accounts (Istio's CA_TRUSTED_NODE_ACCOUNTS). Blank entries
// are skipped; "" gives an empty, non-nil list (nobody may impersonate). The identities
// have no trust domain (Config.TrustedNodeAccounts fills in the authority's). A
// malformed entry is an error wrapping ErrMalformedAccount.
func ParseAccounts(list string) ([]spiffe.Identity, error) {
	out := []spiffe.Identity{}
	for _, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		ns, sa, ok := strings.Cut(entry, "/")
		if !ok {
			return nil, fmt.Errorf("parse accounts: %w: %q is not <namespace>/<serviceaccount>", ErrMalformedAccount, entry)
		}
		if _, err := spiffe.Parse("spiffe://td/ns/" + ns + "/sa/" + sa); err != nil {
			return nil, fmt.Errorf("parse accounts: %w: bad service account %q", ErrMalformedAccount, entry)
		}
		out = append(out, spiffe.Identity{Namespace: ns, ServiceAccount: sa})
	}
	return out, nil
}
