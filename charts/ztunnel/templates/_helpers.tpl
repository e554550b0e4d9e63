{{/* Common labels of every object of this chart. */}}
{{- define "ztunnel.labels" -}}
app.kubernetes.io/name: ztunnel
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: ambit
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app: ztunnel
{{- end }}

{{/* Pod selector labels (Istio's, so tools that look for ztunnel find it). */}}
{{- define "ztunnel.selector" -}}
app: ztunnel
{{- end }}

{{/* Container image reference. */}}
{{- define "ztunnel.image" -}}
{{- printf "%s/%s:%s" .Values.image.hub .Values.image.name (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{/* Port of a listen address "host:port" or ":port". */}}
{{- define "ztunnel.port" -}}
{{- regexReplaceAll "^.*:" . "" -}}
{{- end }}

{{/*
Fails rendering when two container mount paths coincide (Kubernetes rejects that).
Argument: a dict of value name → mount path.
*/}}
{{- define "ztunnel.uniqueMounts" -}}
{{- $seen := dict -}}
{{- range $name, $path := . -}}
{{- if hasKey $seen $path -}}
{{- fail (printf "%s and %s both need a volume mounted at %s: give them different directories" (get $seen $path) $name $path) -}}
{{- end -}}
{{- $_ := set $seen $path $name -}}
{{- end -}}
{{- end }}
