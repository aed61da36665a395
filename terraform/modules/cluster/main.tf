locals {
  labels = {
    "app.kubernetes.io/name" = "macpool"
  }

  # The token travels as a path prefix: Kubernetes forbids query strings in webhook URLs, and managed control
  # planes cannot add headers.
  url_prefix = "${trimsuffix(var.function_url, "/")}/t/${var.token}"

  opt_expressions = {
    "opt-out" = {
      key      = "mutatevirtualmachines.kubemacpool.io"
      operator = "NotIn"
      values   = ["ignore"]
    }
    "opt-in" = {
      key      = "mutatevirtualmachines.kubemacpool.io"
      operator = "In"
      values   = ["allocate"]
    }
  }
  opt_expression = local.opt_expressions[var.opt_mode]
}

resource "kubernetes_namespace_v1" "macpool" {
  metadata {
    name   = var.namespace
    labels = local.labels
  }
}

resource "kubernetes_secret_v1" "macpool" {
  metadata {
    name      = "macpool"
    namespace = kubernetes_namespace_v1.macpool.metadata[0].name
    labels    = local.labels
  }

  data = {
    MACPOOL_URL   = trimsuffix(var.function_url, "/")
    MACPOOL_TOKEN = var.token
  }
}
