package route

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func weighted(ws map[string]uint32, order ...string) *routev3.RouteAction_WeightedClusters {
	wc := &routev3.WeightedCluster{}
	for _, name := range order {
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(ws[name])})
	}
	return &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
}

func TestPickWeighted(t *testing.T) {
	tb := table(t, withAction("w", prefix("/"), &routev3.RouteAction{
		ClusterSpecifier: weighted(map[string]uint32{"v1": 90, "v2": 10, "none": 0}, "v1", "none", "v2"),
	}))
	rt := tb.Match(req("GET", "/"))
	counts := map[string]int{}
	for n := uint64(0); n < 1000; n++ {
		counts[rt.Pick(n)]++
	}
	if counts["v1"] != 900 || counts["v2"] != 100 || counts["none"] != 0 {
		t.Fatalf("counts %v, want v1 900, v2 100", counts)
	}
	if len(rt.Backends) != 3 || rt.Backends[2] != (Backend{Cluster: "v2", Weight: 10}) {
		t.Fatalf("backends %+v", rt.Backends)
	}
}

func TestActionDefaults(t *testing.T) {
	noTimeout := &routev3.Route{Name: "d", Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}}}
	rt := table(t, noTimeout).Match(req("GET", "/"))
	if rt.Timeout != DefaultTimeout || rt.Retry != nil || rt.Fault != nil || rt.Pick(7) != "c" {
		t.Fatalf("route %+v", rt)
	}
	rt = table(t, toCluster("z", "c", prefix("/"))).Match(req("GET", "/"))
	if rt.Timeout != 0 {
		t.Fatalf("timeout 0s compiled to %v", rt.Timeout)
	}
}

func TestRetry(t *testing.T) {
	tb := table(t, withAction("r", prefix("/"), &routev3.RouteAction{
		Timeout: durationpb.New(time.Second),
		RetryPolicy: &routev3.RetryPolicy{
			RetryOn:              "gateway-error, retriable-status-codes,retriable-4xx",
			NumRetries:           wrapperspb.UInt32(3),
			PerTryTimeout:        durationpb.New(200 * time.Millisecond),
			RetriableStatusCodes: []uint32{418},
		},
	}))
	r := tb.Match(req("GET", "/")).Retry
	if r == nil || r.NumRetries != 3 || r.PerTryTimeout != 200*time.Millisecond {
		t.Fatalf("retry %+v", r)
	}
	tests := []struct {
		name             string
		status           int
		connect, reset   bool
		want5xx, wantGwy bool
	}{
		{name: "500", status: 500, want5xx: true},
		{name: "503", status: 503, want5xx: true, wantGwy: true},
		{name: "504 (per-try timeout)", status: 504, want5xx: true, wantGwy: true},
		{name: "418 listed", status: 418, wantGwy: true},
		{name: "409 retriable-4xx", status: 409, wantGwy: true},
		{name: "404", status: 404},
		{name: "200", status: 200},
		{name: "connect failure", connect: true, want5xx: true, wantGwy: true},
		{name: "reset", reset: true, want5xx: true, wantGwy: true},
	}
	only5xx, err := compileRetry(&routev3.RetryPolicy{RetryOn: "5xx"})
	if err != nil || only5xx.NumRetries != 1 {
		t.Fatalf("5xx policy %+v, %v", only5xx, err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := only5xx.Retriable(tc.status, tc.connect, tc.reset); got != tc.want5xx {
				t.Errorf("5xx policy: %v, want %v", got, tc.want5xx)
			}
			if got := r.Retriable(tc.status, tc.connect, tc.reset); got != tc.wantGwy {
				t.Errorf("gateway-error policy: %v, want %v", got, tc.wantGwy)
			}
		})
	}
	connectOnly, _ := compileRetry(&routev3.RetryPolicy{RetryOn: "connect-failure"})
	if !connectOnly.Retriable(0, true, false) || connectOnly.Retriable(0, false, true) || connectOnly.Retriable(503, false, false) {
		t.Error("connect-failure policy retries the wrong outcomes")
	}
	if none, _ := compileRetry(&routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(0)}); none != nil {
		t.Errorf("num_retries 0 compiled to %+v, want nil", none)
	}
}

func TestMirrors(t *testing.T) {
	tb := table(t, withAction("m", prefix("/"), &routev3.RouteAction{
		RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{
			{Cluster: "all"},
			{Cluster: "quarter", RuntimeFraction: &corev3.RuntimeFractionalPercent{
				DefaultValue: &typev3.FractionalPercent{Numerator: 250_000, Denominator: typev3.FractionalPercent_MILLION}}},
		},
	}))
	ms := tb.Match(req("GET", "/")).Mirrors
	if len(ms) != 2 || ms[0].Fraction != 1 || ms[1].Fraction != 0.25 {
		t.Fatalf("mirrors %+v", ms)
	}
	sampled := 0
	for n := uint64(0); n < 1_000_000; n += 100 {
		if ms[1].Sampled(n) {
			sampled++
		}
		if !ms[0].Sampled(n) {
			t.Fatal("full mirror not sampled")
		}
	}
	if sampled != 2500 {
		t.Fatalf("sampled %d of 10000, want 2500", sampled)
	}
}

func TestRouteFault(t *testing.T) {
	hf, err := anypb.New(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
		ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
		Percentage: &typev3.FractionalPercent{Numerator: 1_000_000, Denominator: typev3.FractionalPercent_MILLION},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := toCluster("f", "c", prefix("/"))
	r.TypedPerFilterConfig = map[string]*anypb.Any{FaultFilterName: hf}
	rt := table(t, r).Match(req("GET", "/"))
	if d := rt.Fault.Decide(func() uint64 { return 0 }); d.AbortStatus != 503 {
		t.Fatalf("fault decision %+v", d)
	}
}
