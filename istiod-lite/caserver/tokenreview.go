package caserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// Kubernetes facts the TokenReview authenticator relies on.
const (
	// DefaultTokenAudience is the audience Istio's CA clients request for their
	// projected service account tokens, and the one the CA reviews them for.
	DefaultTokenAudience = "istio-ca"
	// DefaultReviewCacheTTL is how long a successful TokenReview is reused.
	DefaultReviewCacheTTL = time.Minute

	// Extra keys the API server puts in a pod-bound token's review (Kubernetes 1.30+
	// adds the node; older servers only the pod).
	extraNodeName = "authentication.kubernetes.io/node-name"
	extraPodName  = "authentication.kubernetes.io/pod-name"
	extraPodUID   = "authentication.kubernetes.io/pod-uid"

	serviceAccountUserPrefix = "system:serviceaccount:"
	serviceAccountsGroup     = "system:serviceaccounts"

	maxCachedReviews = 10000
)

// ErrTokenRejected is wrapped by TokenReviewAuthenticator when the API server does not
// authenticate the token, or authenticates it as something other than a service
// account with the required audience.
var ErrTokenRejected = errors.New("token rejected")

// TokenReviewAuthenticator authenticates bearer tokens ("authorization: Bearer <token>"
// gRPC metadata) with a Kubernetes TokenReview (authentication.k8s.io/v1) for Audiences,
// as Istio's CA does: the token must be a service account's (user
// "system:serviceaccount:<ns>:<sa>" in group "system:serviceaccounts") and valid for one
// of the audiences. The caller's identity is that service account in TrustDomain. Its
// node is the review's "authentication.kubernetes.io/node-name" extra; failing that the
// spec.nodeName of the pod named by the "…/pod-name" extra (same namespace, and same uid
// when "…/pod-uid" is given), looked up with Pod; else none (no impersonation).
//
// Successful reviews are cached for CacheTTL keyed by the token's SHA-256, to spare the
// API server one review per certificate. Set the fields before first use; it is then
// safe for concurrent use. The API server must let the caller create tokenreviews
// (ClusterRole system:auth-delegator).
type TokenReviewAuthenticator struct {
	// Client creates the TokenReviews. Required.
	Client kubernetes.Interface
	// TrustDomain of the callers' identities. Required.
	TrustDomain string
	// Audiences the token must be valid for (any one); nil means DefaultTokenAudience.
	Audiences []string
	// Pod returns a pod from an informer cache; nil disables the pod-name fallback.
	Pod func(namespace, name string) (*corev1.Pod, bool)
	// CacheTTL is how long a successful review is reused; 0 means
	// DefaultReviewCacheTTL, negative disables the cache.
	CacheTTL time.Duration
	// Now is the clock for the cache; nil means time.Now.
	Now func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cachedReview
}

type cachedReview struct {
	caller  Caller
	expires time.Time
}

// Authenticate implements Authenticator. It returns an error wrapping ErrNoCredentials
// when the request has no authorization metadata, wrapping ErrTokenRejected when the
// review says no, and another error when the review could not be made.
func (a *TokenReviewAuthenticator) Authenticate(ctx context.Context) (*Caller, error) {
	token, err := bearerToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("tokenreview: %w", err)
	}
	key := sha256.Sum256([]byte(token))
	if c, ok := a.cached(key); ok {
		return c, nil
	}
	review, err := a.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: a.audiences()},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("tokenreview: %w", err)
	}
	c, err := a.caller(&review.Status)
	if err != nil {
		return nil, fmt.Errorf("tokenreview: %w", err)
	}
	a.store(key, c)
	return c, nil
}

func (a *TokenReviewAuthenticator) audiences() []string {
	if a.Audiences == nil {
		return []string{DefaultTokenAudience}
	}
	return a.Audiences
}

// caller checks a review's status and derives the caller from it.
func (a *TokenReviewAuthenticator) caller(st *authnv1.TokenReviewStatus) (*Caller, error) {
	if !st.Authenticated {
		if st.Error != "" {
			return nil, fmt.Errorf("%w: %s", ErrTokenRejected, st.Error)
		}
		return nil, fmt.Errorf("%w: not authenticated", ErrTokenRejected)
	}
	if !slices.ContainsFunc(st.Audiences, func(aud string) bool { return slices.Contains(a.audiences(), aud) }) {
		return nil, fmt.Errorf("%w: token audiences %q do not include %q", ErrTokenRejected, st.Audiences, a.audiences())
	}
	if !slices.Contains(st.User.Groups, serviceAccountsGroup) {
		return nil, fmt.Errorf("%w: %q is not in group %s", ErrTokenRejected, st.User.Username, serviceAccountsGroup)
	}
	ns, sa, err := parseServiceAccountUser(st.User.Username)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenRejected, err)
	}
	c := &Caller{
		Identity: spiffe.Identity{TrustDomain: a.TrustDomain, Namespace: ns, ServiceAccount: sa},
		Node:     a.node(ns, st.User.Extra),
		Method:   "tokenreview",
	}
	return c, nil
}

// parseServiceAccountUser splits "system:serviceaccount:<ns>:<sa>".
func parseServiceAccountUser(user string) (ns, sa string, err error) {
	rest, ok := strings.CutPrefix(user, serviceAccountUserPrefix)
	parts := strings.Split(rest, ":")
	if !ok || len(parts) != 2 {
		return "", "", fmt.Errorf("user %q is not a service account", user)
	}
	if _, err := spiffe.Parse("spiffe://td/ns/" + parts[0] + "/sa/" + parts[1]); err != nil {
		return "", "", fmt.Errorf("user %q: bad service account: %w", user, err)
	}
	return parts[0], parts[1], nil
}

// node returns the node the token's pod runs on, "" when unknown.
func (a *TokenReviewAuthenticator) node(ns string, extra map[string]authnv1.ExtraValue) string {
	if n := single(extra[extraNodeName]); n != "" {
		return n
	}
	podName := single(extra[extraPodName])
	if podName == "" || a.Pod == nil {
		return ""
	}
	pod, ok := a.Pod(ns, podName)
	if !ok {
		return ""
	}
	if uid := single(extra[extraPodUID]); uid != "" && string(pod.UID) != uid {
		return "" // a newer pod of the same name: not the token's
	}
	return pod.Spec.NodeName
}

// single returns the only value, "" unless there is exactly one.
func single(v authnv1.ExtraValue) string {
	if len(v) != 1 {
		return ""
	}
	return v[0]
}

func (a *TokenReviewAuthenticator) ttl() time.Duration {
	if a.CacheTTL == 0 {
		return DefaultReviewCacheTTL
	}
	return a.CacheTTL
}

func (a *TokenReviewAuthenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *TokenReviewAuthenticator) cached(key [sha256.Size]byte) (*Caller, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.cache[key]
	if !ok {
		return nil, false
	}
	if !a.now().Before(e.expires) {
		delete(a.cache, key)
		return nil, false
	}
	c := e.caller
	return &c, true
}

// store caches a successful review; when the cache is full of live entries the review
// is simply not cached.
func (a *TokenReviewAuthenticator) store(key [sha256.Size]byte, c *Caller) {
	ttl := a.ttl()
	if ttl < 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.cache == nil {
		a.cache = map[[sha256.Size]byte]cachedReview{}
	}
	if len(a.cache) >= maxCachedReviews {
		for k, e := range a.cache {
			if !now.Before(e.expires) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxCachedReviews {
			return
		}
	}
	a.cache[key] = cachedReview{caller: *c, expires: now.Add(ttl)}
}
