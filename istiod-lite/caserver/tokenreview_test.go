package caserver

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/caclient"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// fakeReviewer is a fake API server answering TokenReviews from a table of tokens.
type fakeReviewer struct {
	mu       sync.Mutex
	statuses map[string]authnv1.TokenReviewStatus
	requests []authnv1.TokenReviewSpec
	fail     error
}

func saUser(ns, name string, extra map[string]authnv1.ExtraValue) authnv1.UserInfo {
	return authnv1.UserInfo{
		Username: "system:serviceaccount:" + ns + ":" + name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		Extra:    extra,
	}
}

func ok(u authnv1.UserInfo) authnv1.TokenReviewStatus {
	return authnv1.TokenReviewStatus{Authenticated: true, User: u, Audiences: []string{"istio-ca"}}
}

func newFakeReviewer() (*fakeReviewer, *fake.Clientset) {
	r := &fakeReviewer{statuses: map[string]authnv1.TokenReviewStatus{
		"ztunnel-a": ok(saUser("istio-system", "ztunnel", map[string]authnv1.ExtraValue{
			"authentication.kubernetes.io/node-name": {"node1"},
			"authentication.kubernetes.io/pod-name":  {"ztunnel-xyz"},
		})),
		"ztunnel-podonly": ok(saUser("istio-system", "ztunnel", map[string]authnv1.ExtraValue{
			"authentication.kubernetes.io/pod-name": {"ztunnel-b"},
			"authentication.kubernetes.io/pod-uid":  {"uid-b"},
		})),
		"ztunnel-stalepod": ok(saUser("istio-system", "ztunnel", map[string]authnv1.ExtraValue{
			"authentication.kubernetes.io/pod-name": {"ztunnel-b"},
			"authentication.kubernetes.io/pod-uid":  {"uid-old"},
		})),
		"ztunnel-unbound": ok(saUser("istio-system", "ztunnel", nil)),
		"app":             ok(saUser("demo", "client", nil)),
		"rogue-node1": ok(saUser("demo", "rogue", map[string]authnv1.ExtraValue{
			"authentication.kubernetes.io/node-name": {"node1"},
		})),
		"expired":      {Authenticated: false, Error: "token has expired"},
		"other-aud":    {Authenticated: true, User: saUser("demo", "client", nil), Audiences: []string{"api"}},
		"human":        {Authenticated: true, User: authnv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}, Audiences: []string{"istio-ca"}},
		"bad-username": ok(authnv1.UserInfo{Username: "system:serviceaccount:demo", Groups: []string{"system:serviceaccounts"}}),
	}}
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests = append(r.requests, tr.Spec)
		if r.fail != nil {
			return true, nil, r.fail
		}
		out := tr.DeepCopy()
		if st, found := r.statuses[tr.Spec.Token]; found {
			out.Status = st
		}
		return true, out, nil
	})
	return r, c
}

func (r *fakeReviewer) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests)
}

func podLookup(ns, name string) (*corev1.Pod, bool) {
	if ns == "istio-system" && name == "ztunnel-b" {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-b")},
			Spec: corev1.PodSpec{NodeName: "node2"}}, true
	}
	return nil, false
}

func bearer(tok string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
}

func TestTokenReviewAuthenticator(t *testing.T) {
	r, kc := newFakeReviewer()
	a := &TokenReviewAuthenticator{Client: kc, TrustDomain: "cluster.local", Pod: podLookup, CacheTTL: -1}
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		want    *Caller
		wantErr error
	}{
		{name: "node from token", ctx: bearer("ztunnel-a"), want: &Caller{Identity: ztunnel, Node: "node1", Method: "tokenreview"}},
		{name: "node from the token's pod", ctx: bearer("ztunnel-podonly"), want: &Caller{Identity: ztunnel, Node: "node2", Method: "tokenreview"}},
		{name: "pod of the same name but another uid", ctx: bearer("ztunnel-stalepod"), want: &Caller{Identity: ztunnel, Method: "tokenreview"}},
		{name: "token bound to no pod", ctx: bearer("ztunnel-unbound"), want: &Caller{Identity: ztunnel, Method: "tokenreview"}},
		{name: "workload token", ctx: bearer("app"), want: &Caller{Identity: client, Method: "tokenreview"}},
		{name: "not authenticated", ctx: bearer("expired"), wantErr: ErrTokenRejected},
		{name: "unknown token", ctx: bearer("nope"), wantErr: ErrTokenRejected},
		{name: "wrong audience", ctx: bearer("other-aud"), wantErr: ErrTokenRejected},
		{name: "not a service account", ctx: bearer("human"), wantErr: ErrTokenRejected},
		{name: "malformed service account user", ctx: bearer("bad-username"), wantErr: ErrTokenRejected},
		{name: "no metadata", ctx: context.Background(), wantErr: ErrNoCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Authenticate(tc.ctx)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tc.want {
				t.Errorf("caller = %+v, want %+v", got, tc.want)
			}
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, req := range r.requests {
		if len(req.Audiences) != 1 || req.Audiences[0] != "istio-ca" {
			t.Errorf("review for %q asked for audiences %q, want [istio-ca]", req.Token, req.Audiences)
		}
	}
}

func TestTokenReviewAPIError(t *testing.T) {
	r, kc := newFakeReviewer()
	r.fail = errors.New("apiserver down")
	a := &TokenReviewAuthenticator{Client: kc, TrustDomain: "cluster.local"}
	_, err := a.Authenticate(bearer("ztunnel-a"))
	if err == nil || errors.Is(err, ErrTokenRejected) || errors.Is(err, ErrNoCredentials) {
		t.Fatalf("err = %v, want a plain review error", err)
	}
}

func TestTokenReviewCache(t *testing.T) {
	r, kc := newFakeReviewer()
	now := time.Unix(1000, 0)
	a := &TokenReviewAuthenticator{Client: kc, TrustDomain: "cluster.local", Now: func() time.Time { return now }}
	for range 3 {
		if _, err := a.Authenticate(bearer("ztunnel-a")); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.count(); n != 1 {
		t.Fatalf("%d reviews for one token within the cache TTL, want 1", n)
	}
	for range 2 {
		if _, err := a.Authenticate(bearer("expired")); err == nil {
			t.Fatal("rejected token accepted")
		}
	}
	if n := r.count(); n != 3 {
		t.Fatalf("%d reviews after two rejected calls, want 3 (rejections are not cached)", n)
	}
	now = now.Add(DefaultReviewCacheTTL)
	if _, err := a.Authenticate(bearer("ztunnel-a")); err != nil {
		t.Fatal(err)
	}
	if n := r.count(); n != 4 {
		t.Fatalf("%d reviews after the cache TTL, want 4", n)
	}
}

// TestCreateCertificateTokenReview: F-SEC-1's node check with TokenReview callers.
func TestCreateCertificateTokenReview(t *testing.T) {
	_, kc := newFakeReviewer()
	a, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{
		Authority:      a,
		Authenticators: []Authenticator{&TokenReviewAuthenticator{Client: kc, TrustDomain: a.TrustDomain(), Pod: podLookup}},
		IdentitiesOnNode: func(node string) []spiffe.Identity {
			return map[string][]spiffe.Identity{"node1": {client, server}, "node2": {other}}[node]
		},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	addr := servePlaintext(t, s)
	for _, tc := range []struct {
		name        string
		token       string
		id          spiffe.Identity
		impersonate bool
		want        codes.Code
	}{
		{"workload, own identity", "app", client, false, codes.OK},
		{"workload asks for another identity", "app", server, false, codes.InvalidArgument},
		{"workload impersonates", "app", server, true, codes.PermissionDenied},
		{"ztunnel impersonates a pod on its node", "ztunnel-a", server, true, codes.OK},
		{"ztunnel impersonates a pod on another node", "ztunnel-a", other, true, codes.PermissionDenied},
		{"ztunnel whose node comes from its pod", "ztunnel-podonly", other, true, codes.OK},
		{"ztunnel token bound to no pod", "ztunnel-unbound", server, true, codes.PermissionDenied},
		{"untrusted account on the node", "rogue-node1", server, true, codes.PermissionDenied},
		{"rejected token", "expired", client, false, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := caclient.New(caclient.Config{Address: addr, Token: token(tc.token)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Fetch(t.Context(), tc.id, tc.impersonate)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("Fetch: code %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

func servePlaintext(t *testing.T, s *Server) string {
	t.Helper()
	return serve(t, s)
}

func TestParseAccounts(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []spiffe.Identity
		wantErr bool
	}{
		{in: "istio-system/ztunnel", want: []spiffe.Identity{{Namespace: "istio-system", ServiceAccount: "ztunnel"}}},
		{in: " a/b , c/d ,", want: []spiffe.Identity{{Namespace: "a", ServiceAccount: "b"}, {Namespace: "c", ServiceAccount: "d"}}},
		{in: "", want: []spiffe.Identity{}},
		{in: "ztunnel", wantErr: true},
		{in: "a/b/c", wantErr: true},
		{in: "/b", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAccounts(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrMalformedAccount) {
					t.Fatalf("err = %v, want ErrMalformedAccount", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}
