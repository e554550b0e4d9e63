{{/* Common labels of every object of this chart. */}}
{{- define "cni.labels" -}}
app.kubernetes.io/name: ambit-cni
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: ambit
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
k8s-app: ambit-cni-node
{{- end }}

{{/* Pod selector labels. */}}
{{- define "cni.selector" -}}
k8s-app: ambit-cni-node
{{- end }}

{{/* Container image reference. */}}
{{- define "cni.image" -}}
{{- printf "%s/%s:%s" .Values.image.hub .Values.image.name (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{/*
Fails rendering when two container mount paths coincide (Kubernetes rejects that).
Argument: a dict of value name → mount path.
*/}}
{{- define "cni.uniqueMounts" -}}
{{- $seen := dict -}}
{{- range $name, $path := . -}}
{{- if hasKey $seen $path -}}
{{- fail (printf "%s and %s both need a volume mounted at %s: give them different directories" (get $seen $path) $name $path) -}}
{{- end -}}
{{- $_ := set $seen $path $name -}}
{{- end -}}
{{- end }}
