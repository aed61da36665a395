locals {
  labels = {
    "app.kubernetes.io/name" = "macpool"
  }

  base_url = trimsuffix(var.function_url, "/")

  # Role credentials (SPEC S4; shared/credentials.ts): hex(sha256("macpool:v1:<role>:<secret>")). Each webhook URL
  # carries its own role's credential as a path prefix (Kubernetes forbids query strings in webhook URLs, and
  # managed control planes cannot add headers), so a URL that an API server error or log prints admits only its
  # role. The secret itself never leaves Terraform state; the reconcile job gets its own credential.
  credentials = {
    vm                  = sha256("macpool:v1:vm:${var.token}")
    release             = sha256("macpool:v1:release:${var.token}")
    pod                 = sha256("macpool:v1:pod:${var.token}")
    namespace_sync      = sha256("macpool:v1:namespace-sync:${var.token}")
    hyperconverged_sync = sha256("macpool:v1:hyperconverged-sync:${var.token}")
    reconcile           = sha256("macpool:v1:reconcile:${var.token}")
  }

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

  # The pod webhooks' opt term (M4): KubeMacPool's pod label, opt-in by default.
  pod_opt_expressions = {
    "opt-out" = {
      key      = "mutatepods.kubemacpool.io"
      operator = "NotIn"
      values   = ["ignore"]
    }
    "opt-in" = {
      key      = "mutatepods.kubemacpool.io"
      operator = "In"
      values   = ["allocate"]
    }
  }
  pod_opt_expression = local.pod_opt_expressions[var.pod_opt_mode]
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

  # The reconcile credential, sent as a header: it reconciles, nothing else, and is never part of a URL.
  data = {
    MACPOOL_URL             = local.base_url
    MACPOOL_RECONCILE_TOKEN = local.credentials.reconcile
  }
}
