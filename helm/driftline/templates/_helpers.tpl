{{/*
Names and labels. Every helper takes the driftline chart context (`.` inside this chart,
`.Subcharts.driftline` from a parent chart that depends on driftline).
*/}}
{{- define "driftline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftline.fullname" -}}
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

{{- define "driftline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "driftline.labels" -}}
helm.sh/chart: {{ include "driftline.chart" . }}
{{ include "driftline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: driftline
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "driftline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "driftline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "driftline.configMapName" -}}
{{- printf "%s-config" (include "driftline.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftline.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else if .Values.secret.create -}}
{{- printf "%s-secret" (include "driftline.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "driftline.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/*
The driftline YAML. config as a map: rendered with state_dir pinned to the state volume.
config as a string: rendered verbatim (DRIFTLINE_STATE_DIR still pins the state dir).
YAML 1.1 reads an unquoted `on:` key as the boolean true, which Helm turns into the key
"true": under models.*.triggers (the only place driftline has an `on` key) it is renamed
back to "on", so `triggers: {on: [data_drift]}` works as written.
*/}}
{{- define "driftline.configYaml" -}}
{{- if kindIs "string" .Values.config -}}
{{- .Values.config -}}
{{- else -}}
{{- $cfg := deepCopy (default (dict) .Values.config) -}}
{{- $_ := set $cfg "state_dir" .Values.persistence.mountPath -}}
{{- if kindIs "map" $cfg.models -}}
{{- range $name, $model := $cfg.models -}}
{{- if and (kindIs "map" $model) (kindIs "map" $model.triggers) (hasKey $model.triggers "true") -}}
{{- $_ := set $model.triggers "on" (get $model.triggers "true") -}}
{{- $_ := unset $model.triggers "true" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
{{- end -}}

{{/* Env vars and envFrom shared by the standalone container and the sidecar. */}}
{{- define "driftline.env" -}}
- name: DRIFTLINE_STATE_DIR
  value: {{ .Values.persistence.mountPath | quote }}
- name: HOME
  value: /tmp
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
- name: XDG_CACHE_HOME
  value: /tmp/.cache
{{- range $envName, $ref := .Values.secretEnv }}
- name: {{ $envName }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "secretEnv.%s.name is required" $envName) $ref.name | quote }}
      key: {{ required (printf "secretEnv.%s.key is required" $envName) $ref.key | quote }}
      {{- if hasKey $ref "optional" }}
      optional: {{ $ref.optional }}
      {{- end }}
{{- end }}
{{- if include "driftline.generatesAdminToken" . }}
- name: DRIFTLINE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "driftline.adminTokenSecretName" . | quote }}
      key: DRIFTLINE_TOKEN
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
"true" when the chart generates the admin token: no Secret the values name provides DRIFTLINE_TOKEN.
*/}}
{{- define "driftline.generatesAdminToken" -}}
{{- $v := .Values -}}
{{- $given := or $v.existingSecret (hasKey $v.secretEnv "DRIFTLINE_TOKEN") (and $v.secret.create (hasKey $v.secret.stringData "DRIFTLINE_TOKEN")) -}}
{{- if and $v.adminToken.generate (not $given) -}}true{{- end -}}
{{- end -}}

{{- define "driftline.adminTokenSecretName" -}}
{{- printf "%s-token" (include "driftline.fullname" . | trunc 57 | trimSuffix "-") -}}
{{- end -}}

{{- define "driftline.envFrom" -}}
{{- with (include "driftline.secretName" .) }}
- secretRef:
    name: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "driftline.configChecksum" -}}
{{- include "driftline.configYaml" . | sha256sum -}}
{{- end -}}

{{/* Volumes shared by both modes: config, state, /tmp. */}}
{{- define "driftline.volumes" -}}
- name: driftline-config
  configMap:
    name: {{ include "driftline.configMapName" . }}
- name: driftline-state
{{- if and .Values.persistence.enabled (eq .Values.mode "standalone") }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-state" (include "driftline.fullname" .)) .Values.persistence.existingClaim }}
{{- else }}
  emptyDir:
    {{- with .Values.persistence.emptyDirSizeLimit }}
    sizeLimit: {{ . }}
    {{- else }} {}
    {{- end }}
{{- end }}
- name: driftline-tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{- define "driftline.volumeMounts" -}}
- name: driftline-config
  mountPath: /etc/driftline
  readOnly: true
- name: driftline-state
  mountPath: {{ .Values.persistence.mountPath }}
- name: driftline-tmp
  mountPath: /tmp
{{- end -}}

{{/*
driftline.container: the container spec (one list item) used by both modes.
Argument: dict "ctx" <driftline chart context> "sidecar" <bool>
*/}}
{{- define "driftline.container" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values -}}
{{- $sidecar := .sidecar -}}
{{- $portName := ternary $v.sidecar.portName "http" $sidecar -}}
- name: {{ ternary $v.sidecar.name "driftline" $sidecar }}
  image: {{ include "driftline.image" $ctx | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if and $sidecar $v.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args:
    - serve
    - --config
    - /etc/driftline/config.yaml
    - --host
    - {{ ternary $v.sidecar.host "0.0.0.0" $sidecar | quote }}
    - --port
    - {{ $v.port | quote }}
  ports:
    - name: {{ $portName }}
      containerPort: {{ $v.port }}
      protocol: TCP
  env:
    {{- include "driftline.env" $ctx | nindent 4 }}
  {{- with (include "driftline.envFrom" $ctx | trim) }}
  envFrom:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with $v.livenessProbe }}
  livenessProbe:
    {{- include "driftline.probe" (dict "probe" . "port" $portName) | nindent 4 }}
  {{- end }}
  {{- with $v.readinessProbe }}
  readinessProbe:
    {{- include "driftline.probe" (dict "probe" . "port" $portName) | nindent 4 }}
  {{- end }}
  {{- with (ternary $v.sidecar.resources $v.resources $sidecar) }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    {{- include "driftline.volumeMounts" $ctx | nindent 4 }}
{{- end -}}

{{/* A probe whose httpGet.port "http" is mapped to the container's actual port name. */}}
{{- define "driftline.probe" -}}
{{- $p := deepCopy .probe -}}
{{- if and (hasKey $p "httpGet") (eq (toString (index $p.httpGet "port")) "http") -}}
{{- $_ := set $p.httpGet "port" .port -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{/*
Sanity checks the JSON schema cannot express.
*/}}
{{- define "driftline.validate" -}}
{{- if and (eq .Values.mode "standalone") .Values.persistence.enabled (gt (int .Values.replicaCount) 1) -}}
{{- fail "persistence.enabled needs replicaCount: 1 - replicas of a Deployment would share one state directory (checkpoints, webhook outbox). Use the default emptyDir state for a consumer group of several replicas." -}}
{{- end -}}
{{- end -}}
