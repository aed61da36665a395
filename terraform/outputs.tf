output "function_url" {
  description = "Base https URL of the function (its Cloud Run service URL). Webhook URLs are <function_url>/t/<role credential>/<path>; the cluster module builds them (output webhook_urls)."
  value       = google_cloudfunctions2_function.macpool.service_config[0].uri
  # Usable only once the API servers may call it.
  depends_on = [google_cloud_run_v2_service_iam_member.public]
}

output "cluster_tokens" {
  description = "Secret of each cluster, by cluster name (the given one, or the generated one where it was null). Feed it to the cluster module, which derives the per-role webhook credentials from it; it never appears in a URL."
  value       = local.cluster_tokens
  sensitive   = true
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
