{{/* The worker's pod template, shared by its Deployment and DaemonSet. */}}
{{- define "kvtier.worker.podTemplate" -}}
{{- $ctx := dict "ctx" . "component" "worker" -}}
metadata:
  labels:
    {{- include "kvtier.labels" $ctx | nindent 4 }}
  {{- with .Values.worker.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  terminationGracePeriodSeconds: {{ .Values.worker.terminationGracePeriodSeconds }}
  {{- with .Values.worker.runtimeClassName }}
  runtimeClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
  {{- with .Values.worker.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.worker.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.worker.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: worker
      image: {{ include "kvtier.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: ["/usr/local/bin/kvtier-worker"]
      args:
        - --listen=0.0.0.0:{{ .Values.worker.port }}
        - --metrics_listen=0.0.0.0:{{ .Values.worker.metricsPort }}
        - --store={{ include "kvtier.worker.storeTarget" . }}
        - --store_replication={{ .Values.store.replication }}
        - --store_timeout={{ .Values.worker.storeTimeout }}
        - --tenant={{ .Values.worker.tenant }}
        - --model={{ .Values.worker.model }}
        - --backend={{ .Values.worker.backend }}
        - --pages={{ int64 .Values.worker.pages }}
        {{- if .Values.tls.existingSecret }}
        - --store_tls_ca_file=/etc/kvtier/tls/ca.crt
        - --tls_cert_file=/etc/kvtier/tls/tls.crt
        - --tls_key_file=/etc/kvtier/tls/tls.key
        {{- if .Values.tls.clientAuth }}
        - --store_tls_cert_file=/etc/kvtier/tls/tls.crt
        - --store_tls_key_file=/etc/kvtier/tls/tls.key
        {{- end }}
        {{- end }}
        {{- if and .Values.store.auth.enabled .Values.store.enabled }}
        - --auth_token_file=/etc/kvtier/auth-token/{{ .Values.store.auth.workerTokenKey }}
        {{- end }}
        {{- if and .Values.sameNode.enabled .Values.store.enabled }}
        - --store_shm_dir=/var/run/kvtier-shm
        {{- end }}
        {{- range .Values.worker.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      ports:
        - name: grpc
          containerPort: {{ .Values.worker.port }}
        - name: metrics
          containerPort: {{ .Values.worker.metricsPort }}
      {{- include "kvtier.probes" (dict "port" .Values.worker.port "tls" (not (empty .Values.tls.existingSecret))) | nindent 6 }}
      resources:
        {{- $res := deepCopy .Values.worker.resources }}
        {{- if gt (int .Values.worker.gpus) 0 }}
        {{- $limits := default dict $res.limits }}
        {{- $_ := set $limits "nvidia.com/gpu" (int .Values.worker.gpus) }}
        {{- $_ := set $res "limits" $limits }}
        {{- end }}
        {{- toYaml $res | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
      {{- if or .Values.tls.existingSecret .Values.sameNode.enabled (and .Values.store.auth.enabled .Values.store.enabled) }}
      volumeMounts:
        {{- if .Values.tls.existingSecret }}
        - name: tls
          mountPath: /etc/kvtier/tls
          readOnly: true
        {{- end }}
        {{- if and .Values.store.auth.enabled .Values.store.enabled }}
        - name: auth-token
          mountPath: /etc/kvtier/auth-token
          readOnly: true
        {{- end }}
        {{- if .Values.sameNode.enabled }}
        - name: shm
          mountPath: /var/run/kvtier-shm
        {{- end }}
  volumes:
    {{- if .Values.tls.existingSecret }}
    - name: tls
      secret:
        secretName: {{ .Values.tls.existingSecret }}
    {{- end }}
    {{- if and .Values.store.auth.enabled .Values.store.enabled }}
    - name: auth-token
      secret:
        # Only the workers' own token, not the token file.
        secretName: {{ include "kvtier.auth.secretName" . }}
        items:
          - key: {{ .Values.store.auth.workerTokenKey }}
            path: {{ .Values.store.auth.workerTokenKey }}
    {{- end }}
    {{- if .Values.sameNode.enabled }}
    - name: shm
      hostPath:
        path: {{ .Values.sameNode.hostPath }}
        type: DirectoryOrCreate
    {{- end }}
      {{- end }}
{{- end -}}
