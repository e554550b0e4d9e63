package envoy

import (
	"fmt"
	"time"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func duration(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func u32(v uint32) *wrapperspb.UInt32Value { return wrapperspb.UInt32(v) }

// u32Set is nil for 0 (unset, Envoy's default) and the value otherwise.
func u32Set(v uint32) *wrapperspb.UInt32Value {
	if v == 0 {
		return nil
	}
	return wrapperspb.UInt32(v)
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}

func suffix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s}}
}

func regex(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
		SafeRegex: &matcherv3.RegexMatcher{Regex: re},
	}}
}

// percentMillion expresses pct (0..100) in millionths, as Istio does for faults.
func percentMillion(pct float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{
		Numerator:   uint32(pct*10000 + 0.5),
		Denominator: typev3.FractionalPercent_MILLION,
	}
}

// percentFraction is pct (0..100) as HUNDRED when it is a whole number, else MILLION.
func percentFraction(pct float64) *typev3.FractionalPercent {
	if pct == float64(uint32(pct)) {
		return &typev3.FractionalPercent{Numerator: uint32(pct), Denominator: typev3.FractionalPercent_HUNDRED}
	}
	return percentMillion(pct)
}

// validPercent reports whether pct is a usable share in (0, 100].
func validPercent(pct float64) bool { return pct > 0 && pct <= 100 }

// inputErr is an ErrInvalidInput error; format may use %w for a cause.
func inputErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidInput}, args...)...)
}

// errorf is a plain error (wrapped into ErrInvalidInput by the caller's inputErr).
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
