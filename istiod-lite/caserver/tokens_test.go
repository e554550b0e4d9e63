package caserver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

func TestLoadTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(tokensFile), 0o600); err != nil {
		t.Fatal(err)
	}
	toks, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if toks.Len() != 4 {
		t.Errorf("Len = %d, want 4", toks.Len())
	}
	for _, tc := range []struct {
		token string
		want  TokenEntry
		ok    bool
	}{
		{"ztunnel-node1", TokenEntry{"istio-system", "ztunnel", "node1"}, true},
		{"app-token", TokenEntry{"demo", "client", ""}, true},
		{"unknown", TokenEntry{}, false},
		{"", TokenEntry{}, false},
		{"#", TokenEntry{}, false},
	} {
		t.Run(tc.token, func(t *testing.T) {
			got, ok := toks.Lookup(tc.token)
			if ok != tc.ok || got != tc.want {
				t.Errorf("Lookup = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, err := LoadTokens(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	var nilTokens *Tokens
	if _, ok := nilTokens.Lookup("x"); ok {
		t.Error("nil Tokens accepted a token")
	}
}

func TestParseTokensErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, wantLine string
	}{
		{"one field", "# c\n\nlonely\n", "line 3:"},
		{"four fields", "a demo/x node=n extra", "line 1:"},
		{"no slash", "tok demo-x", "line 1:"},
		{"empty namespace", "tok /x", "line 1:"},
		{"extra slash", "tok a/b/c", "line 1:"},
		{"bad option", "ok ns/sa\ntok ns/sa zone=a", "line 2:"},
		{"empty node", "tok ns/sa node=", "line 1:"},
		{"duplicate token", "tok ns/a\ntok ns/b", "line 2:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTokens(strings.NewReader(tc.text))
			if !errors.Is(err, ErrMalformedTokenLine) || !strings.Contains(err.Error(), tc.wantLine) {
				t.Fatalf("err = %v, want %q wrapping ErrMalformedTokenLine", err, tc.wantLine)
			}
		})
	}
}

func FuzzParseTokenLine(f *testing.F) {
	for _, s := range strings.Split(tokensFile, "\n") {
		f.Add(s)
	}
	f.Add("tok a/b node=")
	f.Add("\ttok\ta/b\tnode=x\t")
	f.Fuzz(func(t *testing.T, line string) {
		token, e, ok, err := parseTokenLine(line)
		if err != nil {
			if ok || !errors.Is(err, ErrMalformedTokenLine) {
				t.Fatalf("error %v with ok=%v", err, ok)
			}
			return
		}
		if !ok {
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
				t.Fatalf("non-comment line %q skipped", line)
			}
			return
		}
		if token == "" || strings.ContainsAny(token, " \t\n") {
			t.Fatalf("bad token %q accepted from %q", token, line)
		}
		if _, err := spiffe.Parse("spiffe://td/ns/" + e.Namespace + "/sa/" + e.ServiceAccount); err != nil {
			t.Fatalf("bad service account %+v accepted from %q", e, line)
		}
		// Reformatting the entry parses back to the same thing.
		again := token + " " + e.Namespace + "/" + e.ServiceAccount
		if e.Node != "" {
			again += " node=" + e.Node
		}
		token2, e2, ok2, err2 := parseTokenLine(again)
		if err2 != nil || !ok2 || token2 != token || e2 != e {
			t.Fatalf("%q reparsed as %q %+v %v %v", again, token2, e2, ok2, err2)
		}
	})
}
