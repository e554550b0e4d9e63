package policy

const (
	web      = "shop/web"
	db       = "shop/db"
	otherWeb = "other/web"
	selWeb   = "selector: {matchLabels: {app: web}}"
)

// authorizationCases cover valid AuthorizationPolicies: every L4 field, scopes, rule
// shapes and HTTP attributes in ALLOW and DENY policies.
var authorizationCases = []convCase{
	{
		name: "allow principal exact",
		yaml: ap("shop/allow-sleep", `{`+selWeb+`, rules: [{from: [{source: {principals: [cluster.local/ns/sleep/sa/sleep]}}]}]}`),
		want: map[string]string{"shop/allow-sleep": `name:"allow-sleep" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{principals:{exact:"cluster.local/ns/sleep/sa/sleep"}}}}`},
		lists: map[string][]string{web: {"shop/allow-sleep"}},
		checks: []check{allow(web, "sleep/sleep", 8080), deny(web, "sleep/other", 8080), deny(web, "", 8080),
			allow(db, "", 5432), allow(otherWeb, "", 8080)},
	},
	{
		name: "principal prefix suffix and notPrincipals",
		yaml: ap("shop/p", `{`+selWeb+`, rules: [{from: [{source: {principals: ["cluster.local/ns/a/*", "*/sa/b"], notPrincipals: [cluster.local/ns/a/sa/evil]}}]}]}`),
		want: map[string]string{"shop/p": `name:"p" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{principals:{prefix:"cluster.local/ns/a/"} principals:{suffix:"/sa/b"}
			not_principals:{exact:"cluster.local/ns/a/sa/evil"}}}}`},
		lists:  map[string][]string{web: {"shop/p"}},
		checks: []check{allow(web, "a/x", 80), allow(web, "c/b", 80), deny(web, "c/x", 80), deny(web, "a/evil", 80), deny(web, "", 80)},
	},
	{
		name: "principal presence admits any mTLS peer",
		yaml: ap("shop/mtls-only", `{`+selWeb+`, rules: [{from: [{source: {principals: ["*"]}}]}]}`),
		want: map[string]string{"shop/mtls-only": `name:"mtls-only" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{principals:{presence:{}}}}}`},
		lists:  map[string][]string{web: {"shop/mtls-only"}},
		checks: []check{allow(web, "any/one", 80), deny(web, "", 80)},
	},
	{
		name: "namespaces and notNamespaces",
		yaml: ap("shop/ns", `{`+selWeb+`, rules: [{from: [{source: {namespaces: [sleep, "team-*"], notNamespaces: [team-bad]}}]}]}`),
		want: map[string]string{"shop/ns": `name:"ns" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{namespaces:{exact:"sleep"} namespaces:{prefix:"team-"} not_namespaces:{exact:"team-bad"}}}}`},
		lists: map[string][]string{web: {"shop/ns"}},
		checks: []check{allow(web, "sleep/x", 80), allow(web, "team-a/x", 80), deny(web, "team-bad/x", 80),
			deny(web, "other/x", 80), deny(web, "", 80)},
	},
	{
		name: "serviceAccounts default to the policy namespace",
		yaml: ap("shop/sa", `{`+selWeb+`, rules: [{from: [{source: {serviceAccounts: [sleep, other/admin]}}]}]}`),
		want: map[string]string{"shop/sa": `name:"sa" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{service_accounts:{namespace:"shop" serviceAccount:"sleep"}
			service_accounts:{namespace:"other" serviceAccount:"admin"}}}}`},
		lists:  map[string][]string{web: {"shop/sa"}},
		checks: []check{allow(web, "shop/sleep", 80), allow(web, "other/admin", 80), deny(web, "other/sleep", 80), deny(web, "", 80)},
	},
	{
		name: "deny notServiceAccounts denies plaintext too",
		yaml: ap("shop/only-db", `{`+selWeb+`, action: DENY, rules: [{from: [{source: {notServiceAccounts: [shop/db]}}]}]}`),
		want: map[string]string{"shop/only-db": `name:"only-db" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY
			groups:{rules:{matches:{not_service_accounts:{namespace:"shop" serviceAccount:"db"}}}}`},
		lists:  map[string][]string{web: {"shop/only-db"}},
		checks: []check{allow(web, "shop/db", 80), deny(web, "shop/x", 80), deny(web, "", 80), allow(db, "", 80)},
	},
	{
		name: "ipBlocks notIpBlocks v4 and v6",
		yaml: ap("shop/ips", `{`+selWeb+`, rules: [{from: [{source: {ipBlocks: [10.1.0.0/16, "fd00::/8"], notIpBlocks: [10.1.2.3]}}]}]}`),
		want: map[string]string{"shop/ips": `name:"ips" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{source_ips:{address:"\x0a\x01\x00\x00" length:16}
			source_ips:{address:"\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" length:8}
			not_source_ips:{address:"\x0a\x01\x02\x03" length:32}}}}`},
		lists: map[string][]string{web: {"shop/ips"}},
		checks: []check{allow(web, "", 80), deny(web, "", 80).fromIP("10.1.2.3"), deny(web, "", 80).fromIP("10.2.0.1"),
			allow(web, "", 80).fromIP("fd00::1")},
	},
	{
		name: "to ports",
		yaml: ap("shop/ports", `{`+selWeb+`, rules: [{to: [{operation: {ports: ["8080", "9090"]}}]}]}`),
		want: map[string]string{"shop/ports": `name:"ports" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{destination_ports:8080 destination_ports:9090}}}`},
		lists:  map[string][]string{web: {"shop/ports"}},
		checks: []check{allow(web, "", 8080), allow(web, "", 9090), deny(web, "", 22)},
	},
	{
		name: "deny to notPorts",
		yaml: ap("shop/not-ports", `{`+selWeb+`, action: DENY, rules: [{to: [{operation: {notPorts: ["8080"]}}]}]}`),
		want: map[string]string{"shop/not-ports": `name:"not-ports" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY
			groups:{rules:{matches:{not_destination_ports:8080}}}`},
		lists:  map[string][]string{web: {"shop/not-ports"}},
		checks: []check{allow(web, "", 8080), deny(web, "a/b", 9090)},
	},
	{
		name: "when source.ip values and notValues",
		yaml: ap("shop/w-ip", `{`+selWeb+`, rules: [{when: [{key: source.ip, values: [10.1.0.0/16], notValues: [10.1.9.9]}]}]}`),
		want: map[string]string{"shop/w-ip": `name:"w-ip" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{source_ips:{address:"\x0a\x01\x00\x00" length:16} not_source_ips:{address:"\x0a\x01\x09\x09" length:32}}}}`},
		lists:  map[string][]string{web: {"shop/w-ip"}},
		checks: []check{allow(web, "", 80), deny(web, "", 80).fromIP("10.1.9.9"), deny(web, "", 80).fromIP("10.7.0.1")},
	},
	{
		name: "deny when source.namespace notValues",
		yaml: ap("shop/w-ns", `{selector: {matchLabels: {app: db}}, action: DENY, rules: [{when: [{key: source.namespace, notValues: [shop]}]}]}`),
		want: map[string]string{"shop/w-ns": `name:"w-ns" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY
			groups:{rules:{matches:{not_namespaces:{exact:"shop"}}}}`},
		lists:  map[string][]string{db: {"shop/w-ns"}},
		checks: []check{allow(db, "shop/web", 5432), deny(db, "sleep/x", 5432), deny(db, "", 5432), allow(web, "", 80)},
	},
	{
		name: "when source.principal",
		yaml: ap("shop/w-p", `{`+selWeb+`, rules: [{when: [{key: source.principal, values: ["cluster.local/ns/sleep/sa/*"]}]}]}`),
		want: map[string]string{"shop/w-p": `name:"w-p" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{principals:{prefix:"cluster.local/ns/sleep/sa/"}}}}`},
		lists:  map[string][]string{web: {"shop/w-p"}},
		checks: []check{allow(web, "sleep/a", 80), deny(web, "shop/a", 80)},
	},
	{
		name: "namespace scope when destination.ip",
		yaml: ap("shop/w-dst", `{rules: [{when: [{key: destination.ip, values: [10.244.0.10]}]}]}`),
		want: map[string]string{"shop/w-dst": `name:"w-dst" namespace:"shop" scope:NAMESPACE
			groups:{rules:{matches:{destination_ips:{address:"\x0a\xf4\x00\x0a" length:32}}}}`},
		checks: []check{allow(web, "", 80), deny(db, "", 5432), allow(otherWeb, "", 80)},
	},
	{
		name: "deny when destination.port notValues",
		yaml: ap("shop/w-port", `{`+selWeb+`, action: DENY, rules: [{when: [{key: destination.port, notValues: ["8080", "9080"]}]}]}`),
		want: map[string]string{"shop/w-port": `name:"w-port" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY
			groups:{rules:{matches:{not_destination_ports:8080 not_destination_ports:9080}}}`},
		lists:  map[string][]string{web: {"shop/w-port"}},
		checks: []check{allow(web, "", 8080), allow(web, "", 9080), deny(web, "", 22)},
	},
	{
		name: "from to and when are ANDed in that order",
		yaml: ap("shop/and", `{`+selWeb+`, rules: [{from: [{source: {namespaces: [sleep]}}], to: [{operation: {ports: ["8080"]}}],
			when: [{key: source.ip, values: [10.1.0.0/16]}]}]}`),
		want: map[string]string{"shop/and": `name:"and" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{destination_ports:8080}} rules:{matches:{namespaces:{exact:"sleep"}}}
			rules:{matches:{source_ips:{address:"\x0a\x01\x00\x00" length:16}}}}`},
		lists: map[string][]string{web: {"shop/and"}},
		checks: []check{allow(web, "sleep/x", 8080), deny(web, "sleep/x", 9090), deny(web, "sleep/x", 8080).fromIP("10.2.0.1"),
			deny(web, "other/x", 8080)},
	},
	{
		name: "rules are ORed",
		yaml: ap("shop/or", `{`+selWeb+`, rules: [{from: [{source: {namespaces: [a]}}]}, {to: [{operation: {ports: ["9090"]}}]}]}`),
		want: map[string]string{"shop/or": `name:"or" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{namespaces:{exact:"a"}}}} groups:{rules:{matches:{destination_ports:9090}}}`},
		lists:  map[string][]string{web: {"shop/or"}},
		checks: []check{allow(web, "a/x", 8080), allow(web, "b/x", 9090), deny(web, "b/x", 8080)},
	},
	{
		name:   "allow without rules matches nothing",
		yaml:   ap("shop/lockdown", `{`+selWeb+`}`),
		want:   map[string]string{"shop/lockdown": `name:"lockdown" namespace:"shop" scope:WORKLOAD_SELECTOR`},
		lists:  map[string][]string{web: {"shop/lockdown"}},
		checks: []check{deny(web, "a/b", 80), deny(web, "", 80), allow(db, "", 80)},
	},
	{
		name:     "deny without rules matches nothing",
		yaml:     ap("shop/noop", `{`+selWeb+`, action: DENY}`),
		want:     map[string]string{"shop/noop": `name:"noop" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY`},
		lists:    map[string][]string{web: {"shop/noop"}},
		problems: []string{"AuthorizationPolicy shop/noop: warning: a DENY policy without rules never matches"},
		checks:   []check{allow(web, "", 80)},
	},
	{
		name:   "allow empty rule matches everything",
		yaml:   ap("shop/open", `{`+selWeb+`, rules: [{}]}`),
		want:   map[string]string{"shop/open": `name:"open" namespace:"shop" scope:WORKLOAD_SELECTOR groups:{}`},
		lists:  map[string][]string{web: {"shop/open"}},
		checks: []check{allow(web, "", 80), allow(web, "a/b", 1)},
	},
	{
		name:   "deny empty rule matches everything",
		yaml:   ap("shop/closed", `{`+selWeb+`, action: DENY, rules: [{}]}`),
		want:   map[string]string{"shop/closed": `name:"closed" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY groups:{}`},
		lists:  map[string][]string{web: {"shop/closed"}},
		checks: []check{deny(web, "", 80), deny(web, "a/b", 1), allow(db, "", 80)},
	},
	{
		name: "namespace scope is applied by ztunnel, not listed",
		yaml: ap("shop/ns-wide", `{rules: [{from: [{source: {namespaces: [shop]}}]}]}`),
		want: map[string]string{"shop/ns-wide": `name:"ns-wide" namespace:"shop" scope:NAMESPACE
			groups:{rules:{matches:{namespaces:{exact:"shop"}}}}`},
		checks: []check{allow(web, "shop/x", 80), deny(web, "sleep/x", 80), deny(db, "sleep/x", 80), allow(otherWeb, "sleep/x", 80)},
	},
	{
		name: "root namespace without selector is global",
		yaml: ap("istio-system/no-evil", `{action: DENY, rules: [{from: [{source: {namespaces: [evil]}}]}]}`),
		want: map[string]string{"istio-system/no-evil": `name:"no-evil" namespace:"istio-system" scope:GLOBAL action:DENY
			groups:{rules:{matches:{namespaces:{exact:"evil"}}}}`},
		checks: []check{deny(web, "evil/x", 80), deny(otherWeb, "evil/x", 80), allow(web, "good/x", 80)},
	},
	{
		name: "root namespace with selector selects in every namespace",
		yaml: ap("istio-system/web-from-sleep", `{`+selWeb+`, rules: [{from: [{source: {namespaces: [sleep]}}]}]}`),
		want: map[string]string{"istio-system/web-from-sleep": `name:"web-from-sleep" namespace:"istio-system" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{namespaces:{exact:"sleep"}}}}`},
		lists:  map[string][]string{web: {"istio-system/web-from-sleep"}, otherWeb: {"istio-system/web-from-sleep"}},
		checks: []check{deny(web, "x/y", 80), deny(otherWeb, "x/y", 80), allow(otherWeb, "sleep/y", 80), allow(db, "x/y", 80)},
	},
	{
		name: "selector matches label subsets, sorted list",
		yaml: ap("shop/b-version", `{selector: {matchLabels: {app: web, version: v1}}, rules: [{}]}`) +
			ap("shop/a-app", `{`+selWeb+`, rules: [{}]}`) + ap("shop/c-v2", `{selector: {matchLabels: {version: v2}}, rules: [{}]}`),
		want: map[string]string{
			"shop/b-version": `name:"b-version" namespace:"shop" scope:WORKLOAD_SELECTOR groups:{}`,
			"shop/a-app":     `name:"a-app" namespace:"shop" scope:WORKLOAD_SELECTOR groups:{}`,
			"shop/c-v2":      `name:"c-v2" namespace:"shop" scope:WORKLOAD_SELECTOR groups:{}`,
		},
		lists: map[string][]string{web: {"shop/a-app", "shop/b-version"}},
	},
	{
		name: "empty selector selects every workload of the namespace",
		yaml: ap("shop/all", `{selector: {}, rules: [{from: [{source: {namespaces: [shop]}}]}]}`),
		want: map[string]string{"shop/all": `name:"all" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{namespaces:{exact:"shop"}}}}`},
		lists:  map[string][]string{web: {"shop/all"}, db: {"shop/all"}},
		checks: []check{deny(db, "x/y", 80), allow(db, "shop/y", 80), allow(otherWeb, "x/y", 80)},
	},
	{
		name:  "allow rule with only HTTP attributes never matches",
		yaml:  ap("shop/get-only", `{`+selWeb+`, rules: [{to: [{operation: {methods: [GET]}}]}]}`),
		want:  map[string]string{"shop/get-only": `name:"get-only" namespace:"shop" scope:WORKLOAD_SELECTOR`},
		lists: map[string][]string{web: {"shop/get-only"}},
		problems: []string{"AuthorizationPolicy shop/get-only: warning: ztunnel cannot evaluate methods (use a waypoint): " +
			"ALLOW rules using them never match"},
		checks: []check{deny(web, "a/b", 80), deny(web, "", 80)},
	},
	{
		name: "allow keeps L4 rules and drops rules with HTTP attributes",
		yaml: ap("shop/mixed", `{`+selWeb+`, rules: [{to: [{operation: {paths: [/admin], ports: ["8080"]}}]},
			{from: [{source: {namespaces: [sleep], requestPrincipals: ["*"]}}]}, {from: [{source: {namespaces: [sleep]}}]}]}`),
		want: map[string]string{"shop/mixed": `name:"mixed" namespace:"shop" scope:WORKLOAD_SELECTOR
			groups:{rules:{matches:{namespaces:{exact:"sleep"}}}}`},
		lists:    map[string][]string{web: {"shop/mixed"}},
		problems: []string{"cannot evaluate paths, requestPrincipals (use a waypoint)"},
		checks:   []check{allow(web, "sleep/x", 9090), deny(web, "other/x", 8080)},
	},
	{
		name: "deny keeps the L4 part of a rule with HTTP attributes",
		yaml: ap("shop/no-post", `{`+selWeb+`, action: DENY, rules: [{to: [{operation: {methods: [POST], ports: ["8080"]}}]}]}`),
		want: map[string]string{"shop/no-post": `name:"no-post" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY
			groups:{rules:{matches:{destination_ports:8080}}}`},
		lists:    map[string][]string{web: {"shop/no-post"}},
		problems: []string{"warning: ztunnel cannot evaluate methods (use a waypoint): DENY rules are enforced without them"},
		checks:   []check{deny(web, "a/b", 8080), allow(web, "a/b", 9090)},
	},
	{
		name:     "deny rule with only HTTP attributes denies everything",
		yaml:     ap("shop/need-jwt", `{`+selWeb+`, action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]}`),
		want:     map[string]string{"shop/need-jwt": `name:"need-jwt" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY groups:{}`},
		lists:    map[string][]string{web: {"shop/need-jwt"}},
		problems: []string{"cannot evaluate notRequestPrincipals"},
		checks:   []check{deny(web, "a/b", 80), deny(web, "", 80), allow(db, "", 80)},
	},
	{
		name: "deny drops HTTP when conditions",
		yaml: ap("shop/no-evil", `{`+selWeb+`, action: DENY, rules: [{from: [{source: {namespaces: [evil]}}],
			when: [{key: "request.headers[x-user]", values: [bob]}, {key: "request.auth.claims[iss]", notValues: [me]}]}]}`),
		want: map[string]string{"shop/no-evil": `name:"no-evil" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY
			groups:{rules:{matches:{namespaces:{exact:"evil"}}}}`},
		lists:    map[string][]string{web: {"shop/no-evil"}},
		problems: []string{"cannot evaluate request.auth.claims[iss], request.headers[x-user]"},
		checks:   []check{deny(web, "evil/x", 80), allow(web, "good/x", 80)},
	},
	{
		name: "deny clause with an HTTP-only alternative matches any",
		yaml: ap("shop/evil-any-port", `{`+selWeb+`, action: DENY, rules: [{from: [{source: {namespaces: [evil]}}],
			to: [{operation: {methods: [GET]}}, {operation: {ports: ["80"]}}]}]}`),
		want: map[string]string{"shop/evil-any-port": `name:"evil-any-port" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY
			groups:{rules:{matches:{namespaces:{exact:"evil"}}}}`},
		lists:    map[string][]string{web: {"shop/evil-any-port"}},
		problems: []string{"cannot evaluate methods"},
		checks:   []check{deny(web, "evil/x", 8080), allow(web, "good/x", 80)},
	},
	{
		name: "remote IPs and trust domains are not L4 for ztunnel",
		yaml: ap("shop/remote", `{`+selWeb+`, rules: [{from: [{source: {remoteIpBlocks: [10.1.0.0/16]}}]},
			{from: [{source: {trustDomains: [cluster.local]}}]}, {from: [{source: {namespaces: [sleep]}}]}]}`) +
			ap("shop/remote-deny", `{selector: {matchLabels: {app: db}}, action: DENY, rules: [{to: [{operation: {ports: ["5432"]}}],
			when: [{key: remote.ip, values: [10.9.0.0/16]}]}]}`),
		want: map[string]string{
			"shop/remote": `name:"remote" namespace:"shop" scope:WORKLOAD_SELECTOR groups:{rules:{matches:{namespaces:{exact:"sleep"}}}}`,
			"shop/remote-deny": `name:"remote-deny" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY
				groups:{rules:{matches:{destination_ports:5432}}}`,
		},
		lists: map[string][]string{web: {"shop/remote"}, db: {"shop/remote-deny"}},
		problems: []string{"shop/remote: warning: ztunnel cannot evaluate remoteIpBlocks, trustDomains",
			"shop/remote-deny: warning: ztunnel cannot evaluate remote.ip"},
		checks: []check{deny(web, "x/y", 80), allow(web, "sleep/y", 80), deny(db, "x/y", 5432), allow(db, "x/y", 80)},
	},
	{
		name: "targetRefs policies are for waypoints",
		yaml: ap("shop/wp", `{targetRefs: [{kind: Service, group: "", name: web}], rules: [{to: [{operation: {methods: [GET]}}]}]}`) +
			ap("shop/wp1", `{targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}}`),
		checks: []check{allow(web, "", 80)},
	},
	{
		name: "audit custom and dry-run are not sent",
		yaml: ap("shop/audit", `{`+selWeb+`, action: AUDIT, rules: [{}]}`) +
			ap("shop/custom", `{`+selWeb+`, action: CUSTOM, provider: {name: ext}, rules: [{}]}`) +
			doc("AuthorizationPolicy", "shop/dry", `, annotations: {istio.io/dry-run: "true"}`, `{`+selWeb+`, action: DENY, rules: [{}]}`),
		problems: []string{"shop/audit: warning: ztunnel does not enforce the AUDIT action",
			"shop/custom: warning: ztunnel does not enforce the CUSTOM action", "shop/dry: warning: dry-run policies"},
		checks: []check{allow(web, "", 80)},
	},
	{
		name:     "unparsable dry-run annotation enforces the policy",
		yaml:     doc("AuthorizationPolicy", "shop/dry", `, annotations: {istio.io/dry-run: "maybe"}`, `{`+selWeb+`, action: DENY, rules: [{}]}`),
		want:     map[string]string{"shop/dry": `name:"dry" namespace:"shop" scope:WORKLOAD_SELECTOR action:DENY groups:{}`},
		lists:    map[string][]string{web: {"shop/dry"}},
		problems: []string{`shop/dry: warning: annotation istio.io/dry-run="maybe" is not a boolean`},
		checks:   []check{deny(web, "", 80)},
	},
}
