# A generated token for every cluster; used only where the cluster's token is null.
resource "random_password" "cluster_token" {
  for_each = toset(nonsensitive([for c in var.clusters : c.name]))
  length   = 48
  special  = false
}

locals {
  cluster_tokens = {
    for c in var.clusters : c.name => coalesce(c.token, random_password.cluster_token[c.name].result)
  }
  # MACPOOL_TOKENS: "clusterA=token1,clusterB=token2"; a name may repeat, each of its tokens is accepted.
  tokens_env = join(",", flatten([
    for c in var.clusters : [
      for t in concat([local.cluster_tokens[c.name]], c.previous_tokens) : "${c.name}=${t}"
    ]
  ]))
}

resource "google_secret_manager_secret" "tokens" {
  project   = var.project_id
  secret_id = "${var.function_name}-tokens"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "tokens" {
  secret      = google_secret_manager_secret.tokens.id
  secret_data = local.tokens_env

  lifecycle {
    # The function pins this version: the new one must exist before the old one is destroyed.
    create_before_destroy = true
  }
}
