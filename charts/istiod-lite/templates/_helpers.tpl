{{/* Common labels of every object of this chart. */}}
{{- define "istiod.labels" -}}
app.kubernetes.io/name: istiod-lite
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: ambit
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app: istiod
istio: pilot
{{- end }}

{{/* Pod selector labels (Istio's names, so tools that look for istiod find it). */}}
{{- define "istiod.selector" -}}
app: istiod
istio: pilot
{{- end }}

{{/* Container image reference. */}}
{{- define "istiod.image" -}}
{{- printf "%s/%s:%s" .Values.image.hub .Values.image.name (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{/* Port of a listen address "host:port" or ":port". */}}
{{- define "istiod.port" -}}
{{- regexReplaceAll "^.*:" . "" -}}
{{- end }}

{{/* The system namespace (CA Secret, mesh-wide policy). */}}
{{- define "istiod.systemNamespace" -}}
{{- .Values.systemNamespace | default .Release.Namespace -}}
{{- end }}
