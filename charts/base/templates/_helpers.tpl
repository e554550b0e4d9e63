{{/* Common labels of every object of this chart. */}}
{{- define "base.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: ambit
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* API groups and resources of the mesh CRDs this chart installs. */}}
{{- define "base.crdRules" -}}
- apiGroups: ["security.istio.io"]
  resources: ["authorizationpolicies", "peerauthentications", "requestauthentications"]
- apiGroups: ["networking.istio.io"]
  resources: ["serviceentries", "workloadentries", "virtualservices", "destinationrules"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways", "httproutes", "referencegrants"]
{{- end }}
