package waypoint

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// FuzzGateway feeds arbitrary Gateways (names, listeners, infrastructure labels) to
// validation, status and object building: nothing panics, every condition has a
// reason, and an accepted Gateway always builds (both engines).
func FuzzGateway(f *testing.F) {
	f.Add("wp", "shop", "mesh", int32(15008), "HBONE", 1, "k", "v", "istio.io/waypoint-for", "all")
	f.Add("wp.v1", "", "", int32(0), "", 0, "", "", "", "")
	f.Add("a", "b", "mesh", int32(15008), "HBONE", 3, "bad key!", "\x00", "x", "")
	f.Fuzz(func(t *testing.T, name, ns, lname string, port int32, proto string, n int, lk, lv, gk, gv string) {
		gw := &gatewayv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{gk: gv}},
			Spec: gatewayv1.GatewaySpec{
				GatewayClassName: "istio-waypoint",
				Infrastructure: &gatewayv1.GatewayInfrastructure{
					Labels:      map[gatewayv1.LabelKey]gatewayv1.LabelValue{gatewayv1.LabelKey(lk): gatewayv1.LabelValue(lv)},
					Annotations: map[gatewayv1.AnnotationKey]gatewayv1.AnnotationValue{gatewayv1.AnnotationKey(lk): gatewayv1.AnnotationValue(lv)},
				},
			},
		}
		for i := 0; i < n%4; i++ {
			gw.Spec.Listeners = append(gw.Spec.Listeners, gatewayv1.Listener{
				Name: gatewayv1.SectionName(lname), Port: gatewayv1.PortNumber(port), Protocol: gatewayv1.ProtocolType(proto)})
		}
		v := validate(gw)
		for _, engine := range []string{EngineAmbit, EngineEnvoy} {
			cfg, err := Config{Image: "i", EnvoyImage: "e", Engine: engine}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			st := cfg.gatewayStatus(gw, observed{verdict: v, clusterIPs: []string{"10.0.0.1"}})
			for _, c := range st.Conditions {
				if c.Reason == "" || len(c.Message) > maxMessage {
					t.Fatalf("condition %+v", c)
				}
			}
			if len(st.Listeners) != len(gw.Spec.Listeners) {
				t.Fatalf("%d listener statuses for %d listeners", len(st.Listeners), len(gw.Spec.Listeners))
			}
			if v.ok {
				if _, err := cfg.build(gw); err != nil {
					t.Fatalf("accepted gateway does not build: %v", err)
				}
			}
		}
	})
}
