{{/* Names. The fullname prefixes every object, so two releases share a namespace. */}}
{{- define "cluster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cluster.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Selector labels of one component (gateway, prefill, decode, attention, expert): stable across upgrades. */}}
{{- define "cluster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cluster.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Every object's labels; pods add cluster.example.com/role, the role their process serves. */}}
{{- define "cluster.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "cluster.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: {{ include "cluster.name" .ctx }}
{{- end }}

{{- define "cluster.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The headless Service of a StatefulSet, and its pods' DNS names: how peers and the gateway find them. */}}
{{- define "cluster.poolService" -}}
{{ include "cluster.fullname" .ctx }}-{{ .component }}
{{- end }}

{{- define "cluster.podAddress" -}}
{{ include "cluster.poolService" . }}-{{ .index }}.{{ include "cluster.poolService" . }}.{{ .ctx.Release.Namespace }}.svc.{{ .ctx.Values.clusterDomain }}:{{ .port | int64 }}
{{- end }}

{{/* The attention pools the values ask for: name (component), role, replicas. */}}
{{- define "cluster.attentionPools" -}}
{{- $a := .Values.attention }}
{{- if eq $a.mode "both" }}
- {name: attention, role: both, replicas: {{ $a.both.replicas | int64 }}}
{{- else if eq $a.mode "disaggregated" }}
- {name: prefill, role: prefill, replicas: {{ $a.prefill.replicas | int64 }}}
- {name: decode, role: decode, replicas: {{ $a.decode.replicas | int64 }}}
{{- else }}
{{- fail (printf "attention.mode must be both or disaggregated (got %s)" $a.mode) }}
{{- end }}
{{- end }}

{{/* Comma-separated gRPC addresses of every pod of one pool. */}}
{{- define "cluster.poolAddresses" -}}
{{- $out := list }}
{{- range $i := until (int .replicas) }}
{{- $out = append $out (include "cluster.podAddress" (dict "ctx" $.ctx "component" $.component "index" $i "port" $.port)) }}
{{- end }}
{{- join "," $out }}
{{- end }}

{{- define "cluster.modelDir" -}}
/models/{{ .Values.model.dir }}
{{- end }}

{{/* The volume holding the checkpoint; demo writes it, pvc and hostPath are read-only. */}}
{{- define "cluster.modelVolume" -}}
- name: model
{{- if eq .Values.model.source "demo" }}
  emptyDir: {}
{{- else if eq .Values.model.source "pvc" }}
  persistentVolumeClaim:
    claimName: {{ required "model.pvc.claimName is required with model.source pvc" .Values.model.pvc.claimName }}
    readOnly: true
{{- else if eq .Values.model.source "hostPath" }}
  hostPath:
    path: {{ required "model.hostPath.path is required with model.source hostPath" .Values.model.hostPath.path }}
    type: Directory
{{- else }}
{{- fail (printf "model.source must be demo, pvc or hostPath (got %s)" .Values.model.source) }}
{{- end }}
{{- end }}

{{- define "cluster.modelMount" -}}
- name: model
  mountPath: /models
  readOnly: {{ ne .Values.model.source "demo" }}
{{- end }}

{{/* What every container shares: HOME (the image keeps the tokenizer files under it), a writable /tmp. */}}
{{- define "cluster.commonEnv" -}}
- name: HOME
  value: /home/app
- name: DOTNET_CLI_TELEMETRY_OPTOUT
  value: "1"
# The cluster's token: every role refuses internal calls without it and puts it on its own.
- name: CLUSTER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "cluster.tokenSecret" . }}
      key: {{ .Values.clusterToken.key }}
{{- end }}

{{/* The Secret holding the cluster token: one the operator made, or the chart's. */}}
{{- define "cluster.tokenSecret" -}}
{{- .Values.clusterToken.existingSecret | default (printf "%s-cluster-token" (include "cluster.fullname" .)) }}
{{- end }}

{{/*
Internal TLS (clusterTls): the Secret (ca.crt, tls.crt, tls.key), the chart's or the operator's, mounted read-only in
every role's container with CLUSTER_TLS_DIR naming the folder (the workloads include these when clusterTls.enabled).
Init containers get neither: they make no gRPC calls.
*/}}
{{- define "cluster.tlsSecret" -}}
{{- .Values.clusterTls.existingSecret | default (printf "%s-cluster-tls" (include "cluster.fullname" .)) }}
{{- end }}

{{- define "cluster.tlsDir" -}}
/etc/cluster/tls
{{- end }}

{{- define "cluster.tlsEnv" -}}
- name: CLUSTER_TLS_DIR
  value: {{ include "cluster.tlsDir" . }}
{{- end }}

{{- define "cluster.tlsMount" -}}
- name: cluster-tls
  mountPath: {{ include "cluster.tlsDir" . }}
  readOnly: true
{{- end }}

{{- define "cluster.tlsVolume" -}}
- name: cluster-tls
  secret:
    secretName: {{ include "cluster.tlsSecret" . }}
    # 0440: the key readable by the pod's fsGroup (the container's user) and no one else.
    defaultMode: 288
{{- end }}

{{/* The appProtocol of the nodes' gRPC Service ports: cleartext HTTP/2, or TLS (ALPN h2) with clusterTls. */}}
{{- define "cluster.grpcAppProtocol" -}}
{{- ternary "https" "kubernetes.io/h2c" .Values.clusterTls.enabled }}
{{- end }}

{{- define "cluster.containerSecurity" -}}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end }}

{{/* Init containers that prepare /models: with model.source demo, the synthetic checkpoint (same seed, same bytes in every pod). */}}
{{- define "cluster.modelInit" -}}
{{- if eq .Values.model.source "demo" }}
- name: model-init
  image: {{ include "cluster.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["model", "init", "--preset", {{ .Values.model.demo.preset | quote }}, "--weights", {{ .Values.model.demo.weights | quote }},
         "--seed", {{ .Values.model.demo.seed | int64 | quote }}, "--out", {{ include "cluster.modelDir" . | quote }}, "--force"]
  env:
    {{- include "cluster.commonEnv" . | nindent 4 }}
  {{- include "cluster.containerSecurity" . | nindent 2 }}
  volumeMounts:
    {{- include "cluster.modelMount" . | nindent 4 }}
    - name: tmp
      mountPath: /tmp
{{- end }}
{{- end }}

{{/* The plan every attention and expert pod reads at /plan/plan.json: computed by an init container, or an existing ConfigMap. */}}
{{- define "cluster.planInit" -}}
{{- if not .Values.plan.existingConfigMap }}
- name: plan
  image: {{ include "cluster.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["/bin/sh", "/plan-input/plan.sh"]
  env:
    {{- include "cluster.commonEnv" . | nindent 4 }}
  {{- include "cluster.containerSecurity" . | nindent 2 }}
  volumeMounts:
    {{- include "cluster.modelMount" . | nindent 4 }}
    - name: plan-input
      mountPath: /plan-input
      readOnly: true
    - name: plan
      mountPath: /plan
    - name: tmp
      mountPath: /tmp
{{- end }}
{{- end }}

{{- define "cluster.planVolumes" -}}
{{- if .Values.plan.existingConfigMap }}
- name: plan
  configMap:
    name: {{ .Values.plan.existingConfigMap }}
{{- else }}
- name: plan-input
  configMap:
    name: {{ include "cluster.fullname" . }}-plan-input
- name: plan
  emptyDir: {}
{{- end }}
{{- end }}

{{/*
grpc probes on the role's gRPC port; the startup probe's budget is the role's startupSeconds. A node (one given
httpPort) whose gRPC port speaks TLS, which kubelet's grpc probe cannot, is probed over HTTP on its HTTP port instead:
/readyz (200 exactly while grpc.health says SERVING) for startup and readiness, /healthz for liveness.
*/}}
{{- define "cluster.probes" -}}
{{- $p := .ctx.Values.probes }}
{{- $http := and .ctx.Values.clusterTls.enabled .httpPort }}
startupProbe:
  {{- include "cluster.probeAction" (dict "http" $http "path" "/readyz" "port" .port) | nindent 2 }}
  periodSeconds: {{ $p.periodSeconds | int64 }}
  timeoutSeconds: {{ $p.timeoutSeconds | int64 }}
  failureThreshold: {{ div (add (int64 .startupSeconds) (sub (int64 $p.periodSeconds) 1)) (int64 $p.periodSeconds) }}
readinessProbe:
  {{- include "cluster.probeAction" (dict "http" $http "path" "/readyz" "port" .port) | nindent 2 }}
  periodSeconds: {{ $p.periodSeconds | int64 }}
  timeoutSeconds: {{ $p.timeoutSeconds | int64 }}
  failureThreshold: {{ $p.readinessFailureThreshold | int64 }}
livenessProbe:
  {{- include "cluster.probeAction" (dict "http" $http "path" "/healthz" "port" .port) | nindent 2 }}
  periodSeconds: {{ $p.periodSeconds | int64 }}
  timeoutSeconds: {{ $p.timeoutSeconds | int64 }}
  failureThreshold: {{ $p.livenessFailureThreshold | int64 }}
{{- end }}

{{- define "cluster.probeAction" -}}
{{- if .http -}}
httpGet:
  path: {{ .path }}
  port: {{ .http | int64 }}
{{- else -}}
grpc:
  port: {{ .port | int64 }}
{{- end }}
{{- end }}

{{/* Pod-level settings every role shares. */}}
{{- define "cluster.podCommon" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .role.terminationGracePeriodSeconds | int64 }}
{{- with .role.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .role.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
