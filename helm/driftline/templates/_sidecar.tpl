{{/*
=====================================================================================
Sidecar mode: the public named templates a model-server chart includes.

Add driftline as a dependency of your chart (mode: sidecar), then in your pod template:

  metadata:
    labels:
      {{- include "driftline.sidecarPodLabels" .Subcharts.driftline | nindent 8 }}
    annotations:
      {{- include "driftline.sidecarPodAnnotations" .Subcharts.driftline | nindent 8 }}
  spec:
    initContainers:          # sidecar.native: true  -> native sidecar lands here
      {{- include "driftline.sidecarInitContainers" .Subcharts.driftline | nindent 8 }}
    containers:
      - name: model-server
        ...
      {{- include "driftline.sidecarContainers" .Subcharts.driftline | nindent 6 }}
    volumes:
      {{- include "driftline.sidecarVolumes" .Subcharts.driftline | nindent 8 }}

The argument is the driftline chart's context (`.Subcharts.driftline` from the parent,
or `.` inside this chart). Any map with Values (driftline values), Release and Chart
works too.
=====================================================================================
*/}}

{{/* The driftline container as one list item; restartPolicy: Always when sidecar.native. */}}
{{- define "driftline.sidecarContainer" -}}
{{- include "driftline.container" (dict "ctx" . "sidecar" true) -}}
{{- end -}}

{{/* The container if sidecar.native is true (for `initContainers:`), else nothing. */}}
{{- define "driftline.sidecarInitContainers" -}}
{{- if .Values.sidecar.native -}}
{{- include "driftline.sidecarContainer" . -}}
{{- end -}}
{{- end -}}

{{/* The container if sidecar.native is false (for `containers:`), else nothing. */}}
{{- define "driftline.sidecarContainers" -}}
{{- if not .Values.sidecar.native -}}
{{- include "driftline.sidecarContainer" . -}}
{{- end -}}
{{- end -}}

{{/* Volumes the sidecar mounts: the shared config ConfigMap, a state emptyDir, /tmp. */}}
{{- define "driftline.sidecarVolumes" -}}
{{- include "driftline.volumes" . -}}
{{- end -}}

{{/* Pod labels the PodMonitor selects on. */}}
{{- define "driftline.sidecarPodLabels" -}}
{{- toYaml .Values.sidecar.podLabels -}}
{{- end -}}

{{/* Pod annotations: roll the pod when the driftline config changes. */}}
{{- define "driftline.sidecarPodAnnotations" -}}
checksum/driftline-config: {{ include "driftline.configChecksum" . }}
{{- end -}}
