{{/* Pieces of the admission webhook configurations (webhook-admission.yaml). */}}

{{- define "jitgate.webhookCommon" -}}
admissionReviewVersions: [v1]
sideEffects: NoneOnDryRun
matchPolicy: Equivalent
timeoutSeconds: {{ .ctx.Values.webhook.timeoutSeconds }}
clientConfig:
  service:
    name: {{ include "jitgate.webhook.fullname" .ctx }}
    namespace: {{ .ctx.Release.Namespace }}
    path: {{ .path }}
    port: {{ .ctx.Values.webhook.service.port }}
  {{- if eq .ctx.Values.tls.mode "helm" }}
  caBundle: {{ .caBundle }}
  {{- end }}
{{- end -}}

{{- define "jitgate.admissionAnnotations" -}}
{{- if eq .Values.tls.mode "cert-manager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "jitgate.webhook.fullname" .) }}
{{- end }}
{{- end -}}

{{- define "jitgate.exemptMatchConditions" -}}
- name: not-an-exempt-user
  expression: '!(request.userInfo.username in {{ .users }})'
- name: not-in-an-exempt-group
  expression: '!has(request.userInfo.groups) || !request.userInfo.groups.exists(g, g in {{ .groups }})'
{{- end }}

{{- /* Protected actions: only in protected namespaces, never in the excluded ones. */}}
{{- define "jitgate.protectedNamespaceSelector" -}}
namespaceSelector:
  {{- with .selector.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  matchExpressions:
    {{- with .selector.matchExpressions }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ .excluded }}
{{- end }}

{{- /* jitgate's own kinds: every namespace but the excluded ones. */}}
{{- define "jitgate.ownNamespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ .excluded }}
{{- end }}
