package policy

const (
	meshStrict = `{mtls: {mode: STRICT}}`
	convWeb    = "shop/converted_peer_authentication_web-ports"
)

// peerAuthCases cover PeerAuthentication: levels, inheritance, port-level overrides,
// conflicts and invalid objects. A plaintext client has from "".
var peerAuthCases = []convCase{
	{
		name:  "mesh STRICT lists the static policy everywhere",
		yaml:  pa("istio-system/default", meshStrict),
		want:  map[string]string{static: staticText},
		lists: map[string][]string{web: {static}, db: {static}, otherWeb: {static}},
		checks: []check{deny(web, "", 80), allow(web, "sleep/x", 80), deny(otherWeb, "", 80),
			allow(otherWeb, "sleep/x", 80)},
	},
	{
		name:   "any PeerAuthentication serves the static policy, PERMISSIVE lists nothing",
		yaml:   pa("istio-system/default", `{mtls: {mode: PERMISSIVE}}`),
		want:   map[string]string{static: staticText},
		checks: []check{allow(web, "", 80)},
	},
	{
		name:   "mesh STRICT, namespace PERMISSIVE",
		yaml:   pa("istio-system/default", meshStrict) + pa("shop/relaxed", `{mtls: {mode: PERMISSIVE}}`),
		want:   map[string]string{static: staticText},
		lists:  map[string][]string{otherWeb: {static}},
		checks: []check{allow(web, "", 80), allow(db, "", 80), deny(otherWeb, "", 80)},
	},
	{
		name: "mesh STRICT, namespace PERMISSIVE, workload STRICT",
		yaml: pa("istio-system/default", meshStrict) + pa("shop/relaxed", `{mtls: {mode: PERMISSIVE}}`) +
			pa("shop/web-strict", `{`+selWeb+`, mtls: {mode: STRICT}}`),
		want:   map[string]string{static: staticText},
		lists:  map[string][]string{web: {static}, otherWeb: {static}},
		checks: []check{deny(web, "", 80), allow(web, "a/b", 80), allow(db, "", 80)},
	},
	{
		name:   "namespace DISABLE under mesh STRICT accepts plaintext",
		yaml:   pa("istio-system/default", meshStrict) + pa("shop/off", `{mtls: {mode: DISABLE}}`),
		want:   map[string]string{static: staticText},
		lists:  map[string][]string{otherWeb: {static}},
		checks: []check{allow(web, "", 80), deny(otherWeb, "", 80)},
	},
	{
		name:   "namespace UNSET inherits mesh STRICT; workload DISABLE opts out",
		yaml:   pa("istio-system/default", meshStrict) + pa("shop/unset", `{}`) + pa("shop/web-off", `{`+selWeb+`, mtls: {mode: DISABLE}}`),
		want:   map[string]string{static: staticText},
		lists:  map[string][]string{db: {static}, otherWeb: {static}},
		checks: []check{allow(web, "", 80), deny(db, "", 80)},
	},
	{
		name: "namespace STRICT with a PERMISSIVE port on a workload",
		yaml: pa("shop/strict", `{mtls: {mode: STRICT}}`) + pa("shop/web-ports", `{`+selWeb+`, portLevelMtls: {8080: {mode: PERMISSIVE}}}`),
		want: map[string]string{static: staticText, convWeb: `name:"converted_peer_authentication_web-ports" namespace:"shop"
			scope:WORKLOAD_SELECTOR action:DENY groups:{rules:{matches:{not_destination_ports:8080}}
			rules:{matches:{not_principals:{presence:{}}}}}`},
		lists: map[string][]string{web: {convWeb}, db: {static}},
		checks: []check{allow(web, "", 8080), deny(web, "", 9090), allow(web, "a/b", 9090), deny(db, "", 8080),
			allow(otherWeb, "", 80)},
	},
	{
		name: "workload STRICT with PERMISSIVE and DISABLE ports",
		yaml: pa("shop/web-ports", `{`+selWeb+`, mtls: {mode: STRICT}, portLevelMtls: {9090: {mode: DISABLE}, 8080: {mode: PERMISSIVE}, 7070: {mode: STRICT}}}`),
		want: map[string]string{static: staticText, convWeb: `name:"converted_peer_authentication_web-ports" namespace:"shop"
			scope:WORKLOAD_SELECTOR action:DENY groups:{rules:{matches:{not_principals:{presence:{}}}}
			rules:{matches:{not_destination_ports:8080}} rules:{matches:{not_destination_ports:9090}}}`},
		lists:  map[string][]string{web: {convWeb}},
		checks: []check{allow(web, "", 8080), allow(web, "", 9090), deny(web, "", 7070), deny(web, "", 80), allow(db, "", 80)},
	},
	{
		name: "workload PERMISSIVE with a STRICT port under mesh STRICT",
		yaml: pa("istio-system/default", meshStrict) +
			pa("shop/web-ports", `{`+selWeb+`, mtls: {mode: PERMISSIVE}, portLevelMtls: {9090: {mode: STRICT}, 8080: {mode: PERMISSIVE}}}`),
		want: map[string]string{static: staticText, convWeb: `name:"converted_peer_authentication_web-ports" namespace:"shop"
			scope:WORKLOAD_SELECTOR action:DENY groups:{rules:{matches:{not_principals:{presence:{}} destination_ports:9090}}}`},
		lists:  map[string][]string{web: {convWeb}, db: {static}, otherWeb: {static}},
		checks: []check{deny(web, "", 9090), allow(web, "a/b", 9090), allow(web, "", 8080), allow(web, "", 80)},
	},
	{
		name: "no parent policy, workload UNSET with STRICT ports",
		yaml: pa("shop/web-ports", `{`+selWeb+`, portLevelMtls: {9090: {mode: STRICT}, 8443: {mode: STRICT}, 80: {mode: UNSET}}}`),
		want: map[string]string{static: staticText, convWeb: `name:"converted_peer_authentication_web-ports" namespace:"shop"
			scope:WORKLOAD_SELECTOR action:DENY groups:{rules:{matches:{not_principals:{presence:{}} destination_ports:8443}}}
			groups:{rules:{matches:{not_principals:{presence:{}} destination_ports:9090}}}`},
		lists:  map[string][]string{web: {convWeb}},
		checks: []check{deny(web, "", 9090), deny(web, "", 8443), allow(web, "", 80), allow(web, "a/b", 9090)},
	},
	{
		name: "UNSET namespace under mesh STRICT, workload PERMISSIVE port",
		yaml: pa("istio-system/default", meshStrict) + pa("shop/unset", `{mtls: {}}`) +
			pa("shop/web-ports", `{`+selWeb+`, portLevelMtls: {8080: {mode: PERMISSIVE}}}`),
		want: map[string]string{static: staticText, convWeb: `name:"converted_peer_authentication_web-ports" namespace:"shop"
			scope:WORKLOAD_SELECTOR action:DENY groups:{rules:{matches:{not_destination_ports:8080}}
			rules:{matches:{not_principals:{presence:{}}}}}`},
		lists:  map[string][]string{web: {convWeb}, db: {static}, otherWeb: {static}},
		checks: []check{allow(web, "", 8080), deny(web, "", 80)},
	},
	{
		name: "mesh STRICT, workload UNSET with a DISABLE port",
		yaml: pa("istio-system/default", meshStrict) + pa("shop/web-ports", `{`+selWeb+`, portLevelMtls: {8080: {mode: DISABLE}}}`),
		want: map[string]string{static: staticText, convWeb: `name:"converted_peer_authentication_web-ports" namespace:"shop"
			scope:WORKLOAD_SELECTOR action:DENY groups:{rules:{matches:{not_destination_ports:8080}}
			rules:{matches:{not_principals:{presence:{}}}}}`},
		lists:  map[string][]string{web: {convWeb}, db: {static}, otherWeb: {static}},
		checks: []check{allow(web, "", 8080), deny(web, "", 80)},
	},
	{
		name: "port overrides equal to the inherited mode convert to nothing",
		yaml: pa("istio-system/default", meshStrict) + pa("shop/web-ports", `{`+selWeb+`, portLevelMtls: {8080: {mode: STRICT}}}`) +
			pa("shop/db-ports", `{selector: {matchLabels: {app: db}}, mtls: {mode: PERMISSIVE}, portLevelMtls: {5432: {mode: DISABLE}}}`),
		want:   map[string]string{static: staticText},
		lists:  map[string][]string{web: {static}, otherWeb: {static}},
		checks: []check{deny(web, "", 8080), allow(db, "", 5432)},
	},
	{
		name: "oldest namespace and workload policies win",
		yaml: paAt("shop/a-new", "2024-01-01T00:00:00Z", `{mtls: {mode: PERMISSIVE}}`) +
			paAt("shop/z-old", "2020-01-01T00:00:00Z", `{mtls: {mode: STRICT}}`) +
			paAt("shop/web-a", "2024-01-01T00:00:00Z", `{`+selWeb+`, mtls: {mode: STRICT}}`) +
			paAt("shop/web-b", "2021-01-01T00:00:00Z", `{`+selWeb+`, mtls: {mode: PERMISSIVE}}`),
		want:   map[string]string{static: staticText},
		lists:  map[string][]string{db: {static}},
		checks: []check{deny(db, "", 80), allow(web, "", 80)},
	},
	{
		name:     "invalid: namespace policy with port-level mTLS is STRICT",
		yaml:     pa("shop/bad", `{mtls: {mode: PERMISSIVE}, portLevelMtls: {8080: {mode: PERMISSIVE}}}`),
		want:     map[string]string{static: staticText},
		lists:    map[string][]string{web: {static}, db: {static}},
		problems: []string{"PeerAuthentication shop/bad: invalid: portLevelMtls needs a workload selector"},
		checks:   []check{deny(web, "", 8080), allow(otherWeb, "", 80)},
	},
	{
		name:     "invalid: port 0 makes the workload STRICT",
		yaml:     pa("shop/web-ports", `{`+selWeb+`, mtls: {mode: PERMISSIVE}, portLevelMtls: {0: {mode: PERMISSIVE}}}`),
		want:     map[string]string{static: staticText},
		lists:    map[string][]string{web: {static}},
		problems: []string{"invalid: portLevelMtls: port 0 not in 1-65535"},
		checks:   []check{deny(web, "", 80), allow(db, "", 80)},
	},
	{
		name:     "invalid: unknown mode is STRICT",
		yaml:     pa("shop/odd", `{mtls: {mode: 9}}`),
		want:     map[string]string{static: staticText},
		lists:    map[string][]string{web: {static}, db: {static}},
		problems: []string{"invalid: mtls: unknown mode 9"},
	},
	{
		name:     "root namespace workload policy is ignored",
		yaml:     pa("istio-system/web", `{`+selWeb+`, mtls: {mode: STRICT}}`),
		want:     map[string]string{static: staticText},
		problems: []string{"PeerAuthentication istio-system/web: warning: a PeerAuthentication with a selector in the root namespace"},
		checks:   []check{allow(web, "", 80)},
	},
	{
		name: "authorization policies then peer authentication in the list",
		yaml: pa("istio-system/default", meshStrict) + ap("shop/allow-sleep", `{`+selWeb+`, rules: [{from: [{source: {namespaces: [sleep]}}]}]}`),
		want: map[string]string{static: staticText, "shop/allow-sleep": `name:"allow-sleep" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{namespaces:{exact:"sleep"}}}}`},
		lists:  map[string][]string{web: {"shop/allow-sleep", static}, db: {static}, otherWeb: {static}},
		checks: []check{allow(web, "sleep/x", 80), deny(web, "other/x", 80), deny(web, "", 80)},
	},
}
