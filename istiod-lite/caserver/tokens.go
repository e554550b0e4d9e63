package caserver

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// ErrMalformedTokenLine is wrapped by LoadTokens and ParseTokens for a line that is not
// "<token> <namespace>/<serviceaccount> [node=<node>]" or repeats an earlier token.
var ErrMalformedTokenLine = errors.New("malformed token line")

// Tokens maps bearer tokens to the service account (and optionally the node) they
// authenticate. It stands in for Kubernetes TokenReview in tests and local runs. Tokens
// are kept as SHA-256 digests. A Tokens is immutable and safe for concurrent use.
type Tokens struct {
	byDigest map[[sha256.Size]byte]TokenEntry
}

// TokenEntry is what one token authenticates as.
type TokenEntry struct {
	Namespace      string
	ServiceAccount string
	Node           string // "" when the line has no node=
}

// LoadTokens reads a tokens file (see ParseTokens). Errors name the file and, for
// content errors, the 1-based line number and wrap ErrMalformedTokenLine.
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokens: %w", err)
	}
	t, err := ParseTokens(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("load tokens %s: %w", path, err)
	}
	return t, nil
}

// ParseTokens reads lines "<token> <namespace>/<serviceaccount> [node=<node>]" separated
// by spaces or tabs. Blank lines and lines whose first non-blank character is '#' are
// ignored. A malformed or duplicate line is an error "line N: ..." wrapping
// ErrMalformedTokenLine; nothing is accepted from a file with any bad line.
func ParseTokens(r io.Reader) (*Tokens, error) {
	t := &Tokens{byDigest: map[[sha256.Size]byte]TokenEntry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		token, e, ok, err := parseTokenLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if !ok {
			continue
		}
		d := sha256.Sum256([]byte(token))
		if _, dup := t.byDigest[d]; dup {
			return nil, fmt.Errorf("line %d: %w: duplicate token", n, ErrMalformedTokenLine)
		}
		t.byDigest[d] = e
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	return t, nil
}

// parseTokenLine parses one line; ok is false for blank and comment lines.
func parseTokenLine(line string) (token string, e TokenEntry, ok bool, err error) {
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || strings.HasPrefix(trimmed, "#") {
		return "", TokenEntry{}, false, nil
	}
	f := strings.Fields(trimmed)
	if len(f) < 2 || len(f) > 3 {
		return "", TokenEntry{}, false, fmt.Errorf("%w: want <token> <namespace>/<serviceaccount> [node=<node>], have %d fields", ErrMalformedTokenLine, len(f))
	}
	ns, sa, found := strings.Cut(f[1], "/")
	if !found {
		return "", TokenEntry{}, false, fmt.Errorf("%w: %q is not <namespace>/<serviceaccount>", ErrMalformedTokenLine, f[1])
	}
	if _, err := spiffe.Parse("spiffe://td/ns/" + ns + "/sa/" + sa); err != nil {
		return "", TokenEntry{}, false, fmt.Errorf("%w: bad service account %q", ErrMalformedTokenLine, f[1])
	}
	e = TokenEntry{Namespace: ns, ServiceAccount: sa}
	if len(f) == 3 {
		node, has := strings.CutPrefix(f[2], "node=")
		if !has || node == "" {
			return "", TokenEntry{}, false, fmt.Errorf("%w: want node=<node>, have %q", ErrMalformedTokenLine, f[2])
		}
		e.Node = node
	}
	return f[0], e, true, nil
}

// Lookup returns what token authenticates as; ok is false for an unknown token. A nil
// Tokens knows no token.
func (t *Tokens) Lookup(token string) (TokenEntry, bool) {
	if t == nil || token == "" {
		return TokenEntry{}, false
	}
	e, ok := t.byDigest[sha256.Sum256([]byte(token))]
	return e, ok
}

// Len returns the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byDigest)
}
