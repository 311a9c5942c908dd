{{/* Names, labels, probes and sizes shared by the templates. */}}

{{- define "kvtier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kvtier.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kvtier.store.fullname" -}}{{ include "kvtier.fullname" . | trunc 57 | trimSuffix "-" }}-store{{- end -}}
{{- define "kvtier.worker.fullname" -}}{{ include "kvtier.fullname" . | trunc 56 | trimSuffix "-" }}-worker{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "store"). */}}
{{- define "kvtier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvtier.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kvtier.labels" -}}
{{ include "kvtier.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kvtier
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kvtier.image" -}}
{{- $repo := required "image.repository is required (an image built from the repository's Dockerfile)" .Values.image.repository -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Probes: native gRPC probes on grpc.health.v1, or TCP when the port speaks TLS
(Kubernetes' gRPC probes are plaintext). Pass (dict "port" N "tls" bool). */}}
{{- define "kvtier.probes" -}}
{{- $check := ternary (dict "tcpSocket" (dict "port" .port)) (dict "grpc" (dict "port" .port)) .tls -}}
startupProbe:
  {{- toYaml $check | nindent 2 }}
  periodSeconds: 2
  failureThreshold: 60
readinessProbe:
  {{- toYaml $check | nindent 2 }}
  periodSeconds: 5
  failureThreshold: 2
livenessProbe:
  {{- toYaml $check | nindent 2 }}
  periodSeconds: 10
  failureThreshold: 3
{{- end -}}

{{/* A Kubernetes quantity ("4Gi", "512M", "1073741824") in bytes, as an int64. */}}
{{- define "kvtier.quantityBytes" -}}
{{- $q := toString . -}}
{{- $num := regexFind "^[0-9.]+" $q | float64 -}}
{{- $unit := trimPrefix (regexFind "^[0-9.]+" $q) $q -}}
{{- $mult := dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "K" 1000.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 -}}
{{- if not (hasKey $mult $unit) -}}
{{- fail (printf "cannot read the memory quantity %q (use Ki, Mi, Gi, Ti, K, M, G or T)" $q) -}}
{{- end -}}
{{- mulf $num (get $mult $unit) | int64 -}}
{{- end -}}

{{/* T1 bytes: store.t1.bytes, or the memory limit less the headroom. */}}
{{- define "kvtier.store.t1Bytes" -}}
{{- if gt (int64 .Values.store.t1.bytes) 0 -}}
{{- int64 .Values.store.t1.bytes -}}
{{- else -}}
{{- $limit := "" -}}
{{- with .Values.store.resources.limits }}{{ $limit = .memory }}{{ end -}}
{{- if not $limit -}}
{{- fail "store.resources.limits.memory is required to derive T1's size (or set store.t1.bytes)" -}}
{{- end -}}
{{- $bytes := include "kvtier.quantityBytes" $limit | float64 -}}
{{- mulf $bytes (subf 1.0 .Values.store.t1.headroomFraction) | int64 -}}
{{- end -}}
{{- end -}}

{{/* The store workers use: worker.storeTarget, or every shard through the headless Service. */}}
{{- define "kvtier.worker.storeTarget" -}}
{{- if .Values.worker.storeTarget -}}
{{- .Values.worker.storeTarget -}}
{{- else if .Values.store.enabled -}}
{{- printf "dns:///%s.%s.svc:%v" (include "kvtier.store.fullname" .) .Release.Namespace .Values.store.port -}}
{{- else -}}
{{- fail "worker.storeTarget is required when store.enabled is false" -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the token file and the workers' token (store.auth). */}}
{{- define "kvtier.auth.secretName" -}}
{{- if .Values.store.auth.existingSecret -}}{{ .Values.store.auth.existingSecret }}{{- else -}}{{ include "kvtier.fullname" . | trunc 58 | trimSuffix "-" }}-auth{{- end -}}
{{- end -}}
