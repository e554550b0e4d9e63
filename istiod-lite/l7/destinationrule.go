package l7

import (
	"errors"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// destinationRule is the DestinationRule that configures one host.
type destinationRule struct {
	spec    *networkingv1alpha3.DestinationRule
	subsets map[string]*networkingv1alpha3.Subset
}

// subset returns the named subset; nil when d is nil or has none of that name.
func (d *destinationRule) subset(name string) *networkingv1alpha3.Subset {
	if d == nil {
		return nil
	}
	return d.subsets[name]
}

// policy is the cluster policy of a subset ("" for the whole host): the top-level
// traffic policy with the subset's loadBalancer, connectionPool and outlierDetection
// replacing the top-level ones it sets (Istio's merge). Zero values when d is nil.
func (d *destinationRule) policy(subset string) (LBPolicy, *Limits, *Outlier) {
	if d == nil {
		return "", nil, nil
	}
	tp := d.spec.GetTrafficPolicy()
	if sub := d.subset(subset).GetTrafficPolicy(); sub != nil {
		tp = &networkingv1alpha3.TrafficPolicy{
			LoadBalancer:     firstSet(sub.GetLoadBalancer(), tp.GetLoadBalancer()),
			ConnectionPool:   firstSet(sub.GetConnectionPool(), tp.GetConnectionPool()),
			OutlierDetection: firstSet(sub.GetOutlierDetection(), tp.GetOutlierDetection()),
		}
	}
	return convertTrafficPolicy(tp, "", nil)
}

func firstSet[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// indexDestinationRules picks the DestinationRule of each host: the oldest one naming
// it (Istio's choice among conflicting rules); the others are reported Conflicted. A
// rule with a workloadSelector (sidecar-only) or a wildcard host is not applied.
func (ix *index) indexDestinationRules() {
	for _, dr := range ix.drList {
		st := ix.status.of(KindDestinationRule, dr, "")
		spec := &dr.Spec
		if spec.GetWorkloadSelector() != nil {
			st.accepted.fail(ReasonUnsupportedValue, "workloadSelector is not supported (it selects sidecars): not applied")
			continue
		}
		host, err := ix.resolveHost(spec.GetHost(), dr.Namespace)
		if err != nil {
			st.accepted.fail(ReasonUnsupportedValue, "host: %v: not applied", err)
			continue
		}
		if ix.byHost[host] == nil {
			st.accepted.fail(ReasonNoMatchingParent, "host %s is not a known Service: not applied", host)
			continue
		}
		if prev := ix.drs[host]; prev != nil {
			st.accepted.fail(ReasonConflicted, "an older DestinationRule already configures host %s: not applied", host)
			continue
		}
		d := &destinationRule{spec: spec, subsets: map[string]*networkingv1alpha3.Subset{}}
		convertTrafficPolicy(spec.GetTrafficPolicy(), "trafficPolicy", &st.accepted)
		for i, s := range spec.GetSubsets() {
			switch {
			case s.GetName() == "":
				st.accepted.fail(ReasonUnsupportedValue, "subsets[%d]: a subset needs a name: ignored", i)
				continue
			case d.subsets[s.GetName()] != nil:
				st.accepted.fail(ReasonUnsupportedValue, "subsets[%d]: duplicate subset %q: ignored", i, s.GetName())
				continue
			}
			d.subsets[s.GetName()] = s
			convertTrafficPolicy(s.GetTrafficPolicy(), "subsets["+itoa(i)+"].trafficPolicy", &st.accepted)
		}
		ix.drs[host] = d
	}
}

var errWildcardHost = errors.New("wildcard hosts are not supported")

// resolveHost turns the host of an Istio object in namespace ns into a service FQDN:
// a short name (no dot) is relative to ns, "name.namespace" and "name.namespace.svc"
// get the domain suffix, anything else is taken as an FQDN.
func (ix *index) resolveHost(host, ns string) (string, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	switch {
	case host == "":
		return "", errors.New("empty host")
	case strings.Contains(host, "*"):
		return "", errWildcardHost
	}
	switch dots := strings.Count(host, "."); {
	case dots == 0:
		return host + "." + ns + ".svc." + ix.suffix, nil
	case dots == 1:
		return host + ".svc." + ix.suffix, nil
	case dots == 2 && strings.HasSuffix(host, ".svc"):
		return host + "." + ix.suffix, nil
	}
	return host, nil
}

func itoa(i int) string {
	if i < 0 {
		return "-" + uitoa(uint32(-i))
	}
	return uitoa(uint32(i))
}
