output "function_url" {
  description = "Base URL of the macpool function."
  value       = module.macpool.function_url
}

output "webhook_urls" {
  description = "Per cluster, the URL of each webhook by role (sensitive: each carries its role's credential)."
  value = {
    cluster-a = module.cluster_a.webhook_urls
    cluster-b = module.cluster_b.webhook_urls
  }
  sensitive = true
}

output "service_account_email" {
  description = "Runtime service account of the function."
  value       = module.macpool.service_account_email
}

output "cluster_tokens" {
  description = "Token of each cluster (sensitive); read it for token rotation with `terraform output -json cluster_tokens`."
  value       = module.macpool.cluster_tokens
  sensitive   = true
}
