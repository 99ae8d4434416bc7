{{/* Names ------------------------------------------------------------------------------------- */}}
{{- define "driftloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftloop.fullname" -}}
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

{{/* <fullname>-<component>; call with (dict "root" $ "component" "inference") */}}
{{- define "driftloop.componentName" -}}
{{- printf "%s-%s" (include "driftloop.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels ------------------------------------------------------------------------------------ */}}
{{- define "driftloop.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "driftloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: driftloop
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "driftloop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftloop.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "driftloop.componentLabels" -}}
{{ include "driftloop.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Images, accounts ------------------------------------------------------------------------------- */}}
{{/* call with (dict "root" $ "image" .Values.inference.image) */}}
{{- define "driftloop.image" -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "driftloop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "driftloop.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secrets ------------------------------------------------------------------------------------ */}}
{{- define "driftloop.secretName" -}}
{{- include "driftloop.fullname" . -}}
{{- end -}}

{{/* true when the chart's own Secret has at least one key */}}
{{- define "driftloop.ownSecretNeeded" -}}
{{- if or (include "driftloop.ownAdminToken" .) (and .Values.kafka.sasl.password (not .Values.kafka.sasl.existingSecret)) -}}
true
{{- end -}}
{{- end -}}

{{/* true when the chart's own Secret holds the admin token (given inline, or generated) */}}
{{- define "driftloop.ownAdminToken" -}}
{{- if and (not .Values.auth.existingSecret) (not .Values.auth.allowUnauthenticatedAdmin) -}}true{{- end -}}
{{- end -}}

{{/* The admin token the chart stores: the inline one, else the one an earlier release generated
(kept across upgrades), else a new random one. */}}
{{- define "driftloop.adminTokenValue" -}}
{{- if .Values.auth.adminToken -}}
{{- .Values.auth.adminToken -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "driftloop.secretName" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "admin-token") -}}
{{- index $existing.data "admin-token" | b64dec -}}
{{- else -}}
{{- randAlphaNum 40 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "driftloop.adminTokenRef" -}}
{{- if .Values.auth.existingSecret -}}
name: {{ .Values.auth.existingSecret }}
key: {{ .Values.auth.existingSecretKey }}
{{- else -}}
name: {{ include "driftloop.secretName" . }}
key: admin-token
{{- end -}}
{{- end -}}

{{- define "driftloop.hasAdminToken" -}}
{{- if or .Values.auth.existingSecret (not .Values.auth.allowUnauthenticatedAdmin) -}}true{{- end -}}
{{- end -}}

{{- define "driftloop.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "driftloop.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{/* Kafka: environment, volumes and mounts shared by every component ----------------------------------- */}}
{{- define "driftloop.kafkaEnv" -}}
{{- with .Values.kafka.sasl }}
{{- if or .password .existingSecret }}
- name: DRIFTLOOP_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- if .existingSecret }}
      name: {{ .existingSecret }}
      key: {{ .passwordKey }}
      {{- else }}
      name: {{ include "driftloop.secretName" $ }}
      key: kafka-sasl-password
      {{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "driftloop.kafkaVolumes" -}}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: ca.crt
{{- end }}
{{- if .Values.kafka.tls.clientSecret }}
- name: kafka-client
  secret:
    secretName: {{ .Values.kafka.tls.clientSecret }}
    items:
      - key: {{ .Values.kafka.tls.clientCertKey }}
        path: client.crt
      - key: {{ .Values.kafka.tls.clientKeyKey }}
        path: client.key
{{- end }}
{{- end -}}

{{- define "driftloop.kafkaMounts" -}}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/driftloop/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.clientSecret }}
- name: kafka-client
  mountPath: /etc/driftloop/kafka-client
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod pieces ---------------------------------------------------------------------------------- */}}
{{/* the model volume and its init containers; call with the root context */}}
{{- define "driftloop.modelVolume" -}}
- name: model
  {{- if .Values.model.volume }}
  {{- toYaml .Values.model.volume | nindent 2 }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end -}}

{{/* model.initContainers, each with the model volume mounted (after its own mounts) */}}
{{- define "driftloop.modelInitContainers" -}}
{{- $out := list -}}
{{- range .Values.model.initContainers }}
{{- $c := deepCopy . -}}
{{- $mounts := concat (.volumeMounts | default list) (list (dict "name" "model" "mountPath" $.Values.model.mountPath)) -}}
{{- $_ := set $c "volumeMounts" $mounts -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* writable scratch space: the root filesystem is read-only */}}
{{- define "driftloop.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
- name: cache
  emptyDir: {}
{{- end -}}

{{- define "driftloop.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /home/driftloop/.cache
{{- end -}}

{{/* the PVC name of a component's state; call with (dict "root" $ "component" "monitor" "persistence" ...) */}}
{{- define "driftloop.stateClaim" -}}
{{- default (printf "%s-state" (include "driftloop.componentName" (dict "root" .root "component" .component))) .persistence.existingClaim -}}
{{- end -}}

{{- define "driftloop.adaptersClaim" -}}
{{- default (printf "%s-adapters" (include "driftloop.fullname" .)) .Values.adapters.persistence.existingClaim -}}
{{- end -}}

{{- define "driftloop.adaptersVolume" -}}
- name: adapters
  {{- if .Values.adapters.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "driftloop.adaptersClaim" . }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end -}}

{{/* pod-level settings shared by every Deployment; call with (dict "root" $ "values" .Values.monitor) */}}
{{- define "driftloop.podSpecCommon" -}}
serviceAccountName: {{ include "driftloop.serviceAccountName" .root }}
automountServiceAccountToken: false
{{- with .root.Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* resources with the GPU limit added; call with (dict "resources" ... "gpu" ...) */}}
{{- define "driftloop.resources" -}}
{{- $res := deepCopy (.resources | default dict) -}}
{{- if gt (int .gpu.count) 0 -}}
{{- $limits := get $res "limits" | default dict -}}
{{- $_ := set $limits .gpu.resourceName (int .gpu.count) -}}
{{- $_ := set $res "limits" $limits -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}

{{/* ConfigMap data: the chart's settings overlaid by the user's `settings` map (user keys win);
call with (dict "prefix" "DRIFTLOOP_MONITOR_" "chart" $dict "settings" .Values.monitor.settings) */}}
{{- define "driftloop.settingsData" -}}
{{- $data := dict -}}
{{- range $k, $v := .chart }}{{ $_ := set $data (upper $k) $v }}{{ end -}}
{{- range $k, $v := .settings }}{{ $_ := set $data (upper $k) $v }}{{ end -}}
{{- range $k, $v := $data }}
{{- /* YAML numbers arrive as float64: print whole ones as integers, never 2.68e+08 */}}
{{- if and (kindIs "float64" $v) (eq $v (float64 (int64 $v))) }}{{ $v = int64 $v }}{{ end }}
{{ printf "%s%s" $.prefix $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end -}}
