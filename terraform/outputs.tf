output "function_url" {
  description = "Base https URL of the function (its Cloud Run service URL). Webhook URLs are <function_url>/t/<token>/<path>."
  value       = google_cloudfunctions2_function.macpool.service_config[0].uri
  # Usable only once the API servers may call it.
  depends_on = [google_cloud_run_v2_service_iam_member.public]
}

output "cluster_tokens" {
  description = "Token of each cluster, by cluster name (the given one, or the generated one where it was null). Feed it to the cluster module."
  value       = local.cluster_tokens
  sensitive   = true
}

output "webhook_urls" {
  description = "Per cluster, the full webhook and reconcile URLs. Sensitive: they contain the cluster's token."
  value = {
    for name, token in local.cluster_tokens : name => {
      mutate_virtualmachines  = "${google_cloudfunctions2_function.macpool.service_config[0].uri}/t/${token}/mutate-virtualmachines"
      validate_namespaces     = "${google_cloudfunctions2_function.macpool.service_config[0].uri}/t/${token}/validate-namespaces"
      validate_hyperconverged = "${google_cloudfunctions2_function.macpool.service_config[0].uri}/t/${token}/validate-hyperconverged"
      reconcile               = "${google_cloudfunctions2_function.macpool.service_config[0].uri}/t/${token}/reconcile"
    }
  }
  sensitive = true
}

output "service_account_email" {
  description = "Email of the function's runtime service account (roles/datastore.user, and accessor of the token secret)."
  value       = google_service_account.function.email
}

output "tokens_secret_id" {
  description = "Secret Manager secret holding MACPOOL_TOKENS."
  value       = google_secret_manager_secret.tokens.id
}

output "firestore_database" {
  description = "Name of the Firestore database that holds claims and configuration."
  value       = google_firestore_database.default.name
}
