{{/* Name prefix of every object: the release name, plus "-sage" unless it holds "sage". */}}
{{- define "sage.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "sage" .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "sage.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ default "sage" .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sage
{{- end -}}

{{/* Selector labels of one workload: dict "root" $ "component" "relay|order-service|…" "database" "…" */}}
{{- define "sage.selectorLabels" -}}
app.kubernetes.io/name: {{ default "sage" .root.Values.nameOverride }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .database }}
sage.io/database: {{ .database }}
{{- end }}
{{- end -}}

{{- define "sage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sage.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret the workloads read: the ExternalSecret's target, or secrets.existingSecret. */}}
{{- define "sage.secretName" -}}
{{- if .Values.externalSecret.enabled -}}
{{- include "sage.fullname" . -}}
{{- else -}}
{{- required "secrets.existingSecret: name the Secret holding order-service-database-url, payment-service-database-url and broker-url, or enable externalSecret" .Values.secrets.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* An image reference: dict "root" $ "image" .image (repository, tag). */}}
{{- define "sage.image" -}}
{{- $repo := required "image.repository is required" .image.repository -}}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) .image.tag -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" .root.Values.image.registry $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The services a relay or migration Job serves: each must be a service of the chart. */}}
{{- define "sage.checkDatabase" -}}
{{- if not (hasKey .root.Values.services .database) -}}
{{- fail (printf "relay.databases: %q is not a key of services (%s); list service names whose databases hold an outbox" .database (keys .root.Values.services | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}

{{/* env entries from a map of name -> value (sorted, rendered as strings). */}}
{{- define "sage.envMap" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* env entries from a map of name -> {key, optional} of the chart's Secret: dict "root" $ "env" map. */}}
{{- define "sage.secretEnv" -}}
{{- $secret := include "sage.secretName" .root -}}
{{- range $name, $ref := .env }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $ref.key }}
      {{- if $ref.optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end -}}

{{/* The pod-level settings every workload shares. */}}
{{- define "sage.podCommon" -}}
serviceAccountName: {{ include "sage.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Topology spread over zones and nodes: dict "root" $ "component" … "database" … */}}
{{- define "sage.topologySpread" -}}
{{- $spread := .root.Values.topologySpread -}}
{{- if $spread.enabled }}
topologySpreadConstraints:
  - topologyKey: topology.kubernetes.io/zone
    maxSkew: {{ $spread.zone.maxSkew }}
    whenUnsatisfiable: {{ $spread.zone.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "sage.selectorLabels" . | nindent 8 }}
  - topologyKey: kubernetes.io/hostname
    maxSkew: {{ $spread.hostname.maxSkew }}
    whenUnsatisfiable: {{ $spread.hostname.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "sage.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{/* Probes on /health/live and /health/ready of the named port. */}}
{{- define "sage.probes" -}}
{{- $p := .root.Values.probes -}}
startupProbe:
  httpGet: { path: /health/live, port: {{ .port }} }
  periodSeconds: {{ $p.startup.periodSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
  timeoutSeconds: {{ $p.startup.timeoutSeconds }}
livenessProbe:
  httpGet: { path: /health/live, port: {{ .port }} }
  periodSeconds: {{ $p.liveness.periodSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
readinessProbe:
  httpGet: { path: /health/ready, port: {{ .port }} }
  periodSeconds: {{ $p.readiness.periodSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
{{- end -}}

{{/* The writable /tmp of a read-only root filesystem. */}}
{{- define "sage.tmpVolume" -}}
volumes:
  - name: tmp
    emptyDir: { sizeLimit: 64Mi }
{{- end -}}

{{/* NetworkPolicy egress to .ports (TCP) of .peers (any address when empty). */}}
{{- define "sage.egressTo" -}}
- {{- with .peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end -}}

{{/* NetworkPolicy egress to DNS (UDP and TCP). */}}
{{- define "sage.egressDns" -}}
{{- if .dns.enabled }}
- ports:
    {{- range .dns.ports }}
    - port: {{ . }}
      protocol: UDP
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- end -}}
