{{/*
Names. Component names are cut to 52 characters: StatefulSet pods add "-N" and the
controller-revision-hash label adds a hash, and both must stay within 63.
*/}}
{{- define "jitgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jitgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "jitgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jitgate.webhook.fullname" -}}
{{- printf "%s-webhook" (include "jitgate.fullname" .) -}}
{{- end -}}

{{- define "jitgate.operator.fullname" -}}
{{- printf "%s-operator" (include "jitgate.fullname" .) -}}
{{- end -}}

{{- define "jitgate.webhook.serviceAccountName" -}}
{{- default (include "jitgate.webhook.fullname" .) .Values.webhook.serviceAccount.name -}}
{{- end -}}

{{- define "jitgate.operator.serviceAccountName" -}}
{{- default (include "jitgate.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{/* The Kubernetes user names of jitgate's own service accounts. */}}
{{- define "jitgate.webhook.user" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "jitgate.webhook.serviceAccountName" .) -}}
{{- end -}}

{{- define "jitgate.operator.user" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "jitgate.operator.serviceAccountName" .) -}}
{{- end -}}

{{- define "jitgate.tls.secretName" -}}
{{- printf "%s-tls" (include "jitgate.webhook.fullname" .) -}}
{{- end -}}

{{- define "jitgate.clientAuth.secretName" -}}
{{- if eq .Values.webhook.clientAuth.mode "existingSecret" -}}
{{- .Values.webhook.clientAuth.existingSecret -}}
{{- else -}}
{{- printf "%s-client" (include "jitgate.webhook.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "jitgate.auditKey.secretName" -}}
{{- default (printf "%s-audit-key" (include "jitgate.fullname" .)) .Values.audit.hmac.existingSecret -}}
{{- end -}}

{{/* Labels. */}}
{{- define "jitgate.labels" -}}
helm.sh/chart: {{ include "jitgate.chart" . }}
app.kubernetes.io/name: {{ include "jitgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jitgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "jitgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jitgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jitgate.webhook.selectorLabels" -}}
{{ include "jitgate.selectorLabels" . }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "jitgate.operator.selectorLabels" -}}
{{ include "jitgate.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "jitgate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The `restricted` Pod Security Standard, for every pod and container of the chart.
The image's user is 65532; fsGroup makes the audit volume and mounted Secrets readable to it.
*/}}
{{- define "jitgate.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "jitgate.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Namespaces no jitgate webhook ever sees: kube-system, the release namespace (so the webhook and
operator pods can always start) and webhook.excludedNamespaces. A JSON list.
*/}}
{{- define "jitgate.excludedNamespaces" -}}
{{- concat (list "kube-system" .Release.Namespace) .Values.webhook.excludedNamespaces | uniq | toJson -}}
{{- end -}}

{{/* Users and groups exempt from protected-action interception, as JSON lists. */}}
{{- define "jitgate.exemptUsers" -}}
{{- concat .Values.webhook.exempt.users (list (include "jitgate.webhook.user" .) (include "jitgate.operator.user" .)) | uniq | toJson -}}
{{- end -}}

{{- define "jitgate.exemptGroups" -}}
{{- .Values.webhook.exempt.groups | uniq | toJson -}}
{{- end -}}

{{/* Audit environment and arguments shared by both components. */}}
{{- define "jitgate.auditURL" -}}
file:///var/lib/jitgate/audit{{ with .Values.audit.file.retention }}?retention={{ . }}{{ end }}
{{- end -}}

{{- define "jitgate.auditEnv" -}}
{{- if eq .Values.audit.sink "postgres" }}
- name: JITGATE_AUDIT
  valueFrom:
    secretKeyRef:
      name: {{ required "audit.postgres.existingSecret is required when audit.sink is postgres" .Values.audit.postgres.existingSecret }}
      key: {{ .Values.audit.postgres.key }}
{{- end }}
{{- end -}}

{{- define "jitgate.auditArgs" -}}
{{- if eq .Values.audit.sink "file" }}
- --audit={{ include "jitgate.auditURL" . }}
{{- end }}
- --audit-key-file=/etc/jitgate/audit-key/{{ .Values.audit.hmac.key }}
{{- if .Values.audit.checkpoints.existingSecret }}
- --checkpoint-key=/etc/jitgate/checkpoint-key/{{ .Values.audit.checkpoints.key }}
{{- range .Values.audit.checkpoints.witnesses }}
- --witness={{ . }}
{{- end }}
{{- range (include "jitgate.peerWitnessURLs" . | fromJsonArray) }}
- --witness={{ . }}
{{- end }}
{{- if .Values.audit.checkpoints.peerWitnesses.existingSecret }}
- --witness-ca={{ include "jitgate.peerWitnessCA" . }}
{{- end }}
{{- else if .Values.audit.checkpoints.witnesses }}
{{- fail "audit.checkpoints.witnesses: witnesses cosign checkpoints; set audit.checkpoints.existingSecret too" }}
{{- else if .Values.audit.checkpoints.peerWitnesses.existingSecret }}
{{- fail "audit.checkpoints.peerWitnesses: witnesses cosign checkpoints; set audit.checkpoints.existingSecret too" }}
{{- end }}
{{- end -}}

{{/*
Peer witnessing (audit.checkpoints.peerWitnesses): every webhook replica's add-checkpoint URL,
through its own Service (webhook-peers.yaml) named like its pod, so a writer skips the one
naming itself. A JSON list, empty when off.
*/}}
{{- define "jitgate.peerWitnessURLs" -}}
{{- $urls := list -}}
{{- if .Values.audit.checkpoints.peerWitnesses.existingSecret -}}
{{- range $ordinal := until (int .Values.webhook.replicas) -}}
{{- $urls = append $urls (printf "https://%s-%d.%s.svc:8443/witness" (include "jitgate.webhook.fullname" $) $ordinal $.Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- toJson $urls -}}
{{- end -}}

{{/* Where the webhook's CA (ca.crt of its serving Secret) is mounted for peer witnessing. */}}
{{- define "jitgate.peerWitnessCA" -}}/etc/jitgate/webhook-ca/ca.crt{{- end -}}

{{/* Where a webhook replica keeps what it cosigned: beside its log, on its own volume. */}}
{{- define "jitgate.peerWitnessState" -}}
{{- if eq .Values.audit.sink "file" -}}/var/lib/jitgate/audit/.witness{{- else -}}/var/lib/jitgate/witness{{- end -}}
{{- end -}}

{{- define "jitgate.auditVolumeClaimTemplates" -}}
{{- if eq .Values.audit.sink "file" }}
persistentVolumeClaimRetentionPolicy:
  whenDeleted: {{ .Values.audit.file.retentionPolicy.whenDeleted }}
  whenScaled: {{ .Values.audit.file.retentionPolicy.whenScaled }}
volumeClaimTemplates:
  - apiVersion: v1
    kind: PersistentVolumeClaim
    metadata:
      name: audit
    spec:
      accessModes:
        {{- toYaml .Values.audit.file.accessModes | nindent 8 }}
      {{- with .Values.audit.file.storageClassName }}
      storageClassName: {{ . }}
      {{- end }}
      resources:
        requests:
          storage: {{ .Values.audit.file.size }}
{{- end }}
{{- end -}}

{{/*
The audit volume a StatefulSet has, as one comparable line: "none" without volumeClaimTemplates.
Kubernetes never changes a StatefulSet's volumeClaimTemplates, so a `helm upgrade` that would
(audit.sink file <-> postgres, or another audit.file size, class or access mode) is refused
here, before anything is applied, with the steps to follow; otherwise the API server refuses
the StatefulSet halfway through and the release is left failed. `lookup` finds nothing in
`helm template` and on a first install, so only a live upgrade is checked.
Arguments: a dict with "ctx" (the root context) and "name" (the StatefulSet's name).
*/}}
{{- define "jitgate.auditVolumeGuard" -}}
{{- $ctx := .ctx -}}
{{- $live := lookup "apps/v1" "StatefulSet" $ctx.Release.Namespace .name -}}
{{- if $live -}}
{{- $was := "none" -}}
{{- with ($live.spec.volumeClaimTemplates | default list) -}}
{{- $claim := (index . 0).spec -}}
{{- $was = printf "%s, storageClassName %q, accessModes %s" $claim.resources.requests.storage ($claim.storageClassName | default "") (join "," $claim.accessModes) -}}
{{- end -}}
{{- $wants := "none" -}}
{{- if eq $ctx.Values.audit.sink "file" -}}
{{- $file := $ctx.Values.audit.file -}}
{{- $wants = printf "%s, storageClassName %q, accessModes %s" (toString $file.size) $file.storageClassName (join "," $file.accessModes) -}}
{{- end -}}
{{- if ne $was $wants -}}
{{- $now := ternary "file (an audit volume per pod)" "postgres (no audit volume)" (ne $was "none") -}}
{{- $change := ternary (printf "audit.sink %s -> %s" (ternary "file" "postgres" (ne $was "none")) $ctx.Values.audit.sink) (printf "the audit volume %s -> %s" $was $wants) (or (eq $was "none") (eq $wants "none")) -}}
{{- fail (printf `refused before changing anything: %s changes the volumeClaimTemplates of StatefulSet %s, which Kubernetes cannot change in place (the release runs with audit sink %s). To switch:
  1. Verify every writer's log and keep it (chart README, "Switching the audit sink"); audit volumes are kept (audit.file.retentionPolicy).
  2. kubectl -n %s delete statefulset %s %s --cascade=orphan   (the pods keep running and answering)
  3. Run this helm upgrade again: the new StatefulSets adopt the pods and replace them one at a time.` $change .name $now $ctx.Release.Namespace (include "jitgate.webhook.fullname" $ctx) (include "jitgate.operator.fullname" $ctx)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Volumes and mounts both components share: /tmp, the HMAC key, the audit volume. */}}
{{- define "jitgate.commonVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
- name: audit-key
  secret:
    secretName: {{ include "jitgate.auditKey.secretName" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.audit.hmac.key }}
        path: {{ .Values.audit.hmac.key }}
{{- with .Values.audit.checkpoints.existingSecret }}
- name: checkpoint-key
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ $.Values.audit.checkpoints.key }}
        path: {{ $.Values.audit.checkpoints.key }}
{{- end }}
{{- if .Values.audit.checkpoints.peerWitnesses.existingSecret }}
- name: webhook-ca
  secret:
    secretName: {{ include "jitgate.tls.secretName" . }}
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "jitgate.commonVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: audit-key
  mountPath: /etc/jitgate/audit-key
  readOnly: true
{{- if .Values.audit.checkpoints.existingSecret }}
- name: checkpoint-key
  mountPath: /etc/jitgate/checkpoint-key
  readOnly: true
{{- end }}
{{- if .Values.audit.checkpoints.peerWitnesses.existingSecret }}
- name: webhook-ca
  mountPath: /etc/jitgate/webhook-ca
  readOnly: true
{{- end }}
{{- if eq .Values.audit.sink "file" }}
- name: audit
  mountPath: /var/lib/jitgate/audit
{{- end }}
{{- end -}}

{{- define "jitgate.downwardEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: HOME
  value: /tmp
- name: PYTHONUNBUFFERED
  value: "1"
{{- end -}}

{{/*
Scheduling defaults: prefer one replica per node, spread over zones and nodes.
Arguments: a dict with "ctx" (the root context), "values" (the component's values) and
"selector" (the component's selector labels as YAML).
*/}}
{{- define "jitgate.scheduling" -}}
{{- $values := .values -}}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $values.affinity }}
affinity:
  {{- toYaml $values.affinity | nindent 2 }}
{{- else }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- .selector | nindent 14 }}
{{- end }}
{{- if $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml $values.topologySpreadConstraints | nindent 2 }}
{{- else }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- .selector | nindent 8 }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- .selector | nindent 8 }}
{{- end }}
{{- end -}}
