package fault

import (
	"errors"
	"strings"
	"testing"
	"time"

	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func pct(n uint32, d typev3.FractionalPercent_DenominatorType) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: d}
}

func delay(d time.Duration, p *typev3.FractionalPercent) *faultcommonv3.FaultDelay {
	return &faultcommonv3.FaultDelay{
		FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)},
		Percentage:         p,
	}
}

func abort(status uint32, p *typev3.FractionalPercent) *faultv3.FaultAbort {
	return &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: status}, Percentage: p}
}

// sequence returns a rnd yielding 0, 100, 200, ... so that over 10,000 draws
// the residues mod 1e6 are spread evenly.
func sequence() func() uint64 {
	var n uint64
	return func() uint64 { n++; return (n - 1) * 100 }
}

func TestCompileAndDecide(t *testing.T) {
	tests := []struct {
		name      string
		in        *faultv3.HTTPFault
		nilPolicy bool
		delays    int // per 10,000 requests
		aborts    int
		status    int
	}{
		{name: "nil", in: nil, nilPolicy: true},
		{name: "empty", in: &faultv3.HTTPFault{}, nilPolicy: true},
		{name: "zero percent", in: &faultv3.HTTPFault{Abort: abort(503, nil)}, nilPolicy: true},
		{name: "abort 50 of hundred", in: &faultv3.HTTPFault{Abort: abort(503, pct(50, typev3.FractionalPercent_HUNDRED))},
			aborts: 5_000, status: 503},
		{name: "abort 25 of ten thousand", in: &faultv3.HTTPFault{Abort: abort(500, pct(25, typev3.FractionalPercent_TEN_THOUSAND))},
			aborts: 25, status: 500},
		{name: "delay all of million", in: &faultv3.HTTPFault{Delay: delay(time.Second, pct(1_000_000, typev3.FractionalPercent_MILLION))},
			delays: 10_000},
		{name: "over 100 percent is capped", in: &faultv3.HTTPFault{Delay: delay(time.Second, pct(300, typev3.FractionalPercent_HUNDRED))},
			delays: 10_000},
		{name: "both", in: &faultv3.HTTPFault{
			Delay: delay(2*time.Second, pct(10, typev3.FractionalPercent_HUNDRED)),
			Abort: abort(418, pct(100, typev3.FractionalPercent_HUNDRED))},
			delays: 1_000, aborts: 10_000, status: 418},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.in)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if (p == nil) != tc.nilPolicy {
				t.Fatalf("policy nil = %v, want %v", p == nil, tc.nilPolicy)
			}
			// Decide draws for the delay first (when configured), then for
			// the abort: give each its own full sequence of residues.
			hasDelay := p != nil && p.delayPerM > 0
			delayRnd, abortRnd := sequence(), sequence()
			delays, aborts := 0, 0
			for i := 0; i < 10_000; i++ {
				calls := 0
				d := p.Decide(func() uint64 {
					calls++
					if calls == 1 && hasDelay {
						return delayRnd()
					}
					return abortRnd()
				})
				if d.Delay > 0 {
					delays++
				}
				if d.AbortStatus != 0 {
					aborts++
					if d.AbortStatus != tc.status {
						t.Fatalf("abort status %d, want %d", d.AbortStatus, tc.status)
					}
				}
			}
			if delays != tc.delays || aborts != tc.aborts {
				t.Fatalf("delays %d aborts %d, want %d %d", delays, aborts, tc.delays, tc.aborts)
			}
		})
	}
}

func TestCompileRejects(t *testing.T) {
	tests := []struct {
		name        string
		in          *faultv3.HTTPFault
		want        string
		unsupported bool
	}{
		{name: "header delay", unsupported: true, want: "delay.header_delay", in: &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_HeaderDelay_{HeaderDelay: &faultcommonv3.FaultDelay_HeaderDelay{}}}}},
		{name: "grpc abort", unsupported: true, want: "abort.grpc_status", in: &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
			ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}}}},
		{name: "upstream cluster", unsupported: true, want: "upstream_cluster", in: &faultv3.HTTPFault{UpstreamCluster: "x"}},
		{name: "downstream nodes", unsupported: true, want: "downstream_nodes", in: &faultv3.HTTPFault{DownstreamNodes: []string{"a"}}},
		{name: "status too low", want: "http_status", in: &faultv3.HTTPFault{Abort: abort(100, pct(1, 0))}},
		{name: "no fixed delay", want: "fixed_delay", in: &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{Percentage: pct(1, 0)}}},
		{name: "zero delay", want: "positive", in: &faultv3.HTTPFault{Delay: delay(0, pct(1, 0))}},
		{name: "bad denominator", want: "denominator", in: &faultv3.HTTPFault{Abort: abort(500, pct(1, 7))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.in)
			if err == nil {
				t.Fatalf("Compile = %v, want error", p)
			}
			if tc.unsupported && !errors.Is(err, ErrUnsupported) {
				t.Errorf("error %v does not wrap ErrUnsupported", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestNilPolicy(t *testing.T) {
	var p *Policy
	if d := p.Decide(func() uint64 { return 0 }); d != (Decision{}) {
		t.Fatalf("nil policy decided %+v", d)
	}
}

func FuzzCompile(f *testing.F) {
	seed, _ := proto.Marshal(&faultv3.HTTPFault{
		Delay: delay(time.Second, pct(10, typev3.FractionalPercent_HUNDRED)),
		Abort: abort(503, pct(5, typev3.FractionalPercent_MILLION)),
	})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var hf faultv3.HTTPFault
		if proto.Unmarshal(data, &hf) != nil {
			return
		}
		p, err := Compile(&hf)
		if err != nil {
			return
		}
		d := p.Decide(func() uint64 { return uint64(len(data)) })
		if d.AbortStatus != 0 && (d.AbortStatus < 200 || d.AbortStatus >= 600) {
			t.Fatalf("abort status %d", d.AbortStatus)
		}
		if d.Delay < 0 {
			t.Fatalf("negative delay")
		}
	})
}
