output "namespace" {
  description = "Namespace of the reconcile CronJob and its Secret."
  value       = kubernetes_namespace_v1.macpool.metadata[0].name
}

output "mutating_webhook_configuration" {
  description = "Name of the MutatingWebhookConfiguration (VM allocation and release)."
  value       = kubernetes_mutating_webhook_configuration_v1.macpool.metadata[0].name
}

output "validating_webhook_configuration" {
  description = "Name of the ValidatingWebhookConfiguration (namespace sync and HyperConverged validation)."
  value       = kubernetes_validating_webhook_configuration_v1.macpool.metadata[0].name
}

output "reconcile_cron_job" {
  description = "Name of the reconcile CronJob; run it at once with `kubectl create job -n <namespace> --from=cronjob/<name> <job-name>`."
  value       = kubernetes_cron_job_v1.reconcile.metadata[0].name
}

output "webhook_urls" {
  description = "The URL each webhook calls, by role (vm, release, pod, pod_release, namespace_sync, hyperconverged_sync). Sensitive: each carries its role's credential, though never the cluster secret."
  value = {
    vm                  = kubernetes_mutating_webhook_configuration_v1.macpool.webhook[0].client_config[0].url
    release             = kubernetes_mutating_webhook_configuration_v1.macpool.webhook[1].client_config[0].url
    pod                 = kubernetes_mutating_webhook_configuration_v1.macpool.webhook[2].client_config[0].url
    pod_release         = kubernetes_mutating_webhook_configuration_v1.macpool.webhook[3].client_config[0].url
    namespace_sync      = kubernetes_validating_webhook_configuration_v1.macpool.webhook[0].client_config[0].url
    hyperconverged_sync = kubernetes_validating_webhook_configuration_v1.macpool.webhook[1].client_config[0].url
  }
  sensitive = true
}
