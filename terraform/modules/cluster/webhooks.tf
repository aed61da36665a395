# The same objects as webhookConfigurations() in shared/webhooks.ts; test/unit/terraform.test.ts holds them equal.
# Apply this module only once the function serves: the VM webhook fails closed.

resource "kubernetes_mutating_webhook_configuration_v1" "macpool" {
  metadata {
    name   = "macpool-mutator"
    labels = local.labels
  }

  # A VM must never be stored without the MAC it needs. Its URL shows in the errors users see when the call fails:
  # its credential admits VM CREATE and UPDATE only.
  webhook {
    name                      = "mutatevirtualmachines.kubemacpool.io"
    admission_review_versions = ["v1", "v1beta1"]
    failure_policy            = "Fail"
    match_policy              = "Equivalent"
    reinvocation_policy       = "Never"
    side_effects              = "NoneOnDryRun"
    timeout_seconds           = var.timeout_seconds

    client_config {
      url = "${local.base_url}/t/${local.credentials.vm}/mutate-virtualmachines"
    }

    rule {
      api_groups   = ["kubevirt.io"]
      api_versions = ["v1"]
      operations   = ["CREATE", "UPDATE"]
      resources    = ["virtualmachines"]
      scope        = "Namespaced"
    }

    namespace_selector {
      match_expressions {
        key      = "runlevel"
        operator = "NotIn"
        values   = ["0", "1"]
      }
      match_expressions {
        key      = "openshift.io/run-level"
        operator = "NotIn"
        values   = ["0", "1"]
      }
      match_expressions {
        key      = local.opt_expression.key
        operator = local.opt_expression.operator
        values   = local.opt_expression.values
      }
    }
  }

  # Fail-open: a VM can always be deleted, even with the function unreachable; reconcile frees what is missed.
  # Its own credential: the only webhook one that releases claims.
  webhook {
    name                      = "releasevirtualmachines.kubemacpool.io"
    admission_review_versions = ["v1", "v1beta1"]
    failure_policy            = "Ignore"
    match_policy              = "Equivalent"
    reinvocation_policy       = "Never"
    side_effects              = "NoneOnDryRun"
    timeout_seconds           = var.timeout_seconds

    client_config {
      url = "${local.base_url}/t/${local.credentials.release}/mutate-virtualmachines"
    }

    rule {
      api_groups   = ["kubevirt.io"]
      api_versions = ["v1"]
      operations   = ["DELETE"]
      resources    = ["virtualmachines"]
      scope        = "Namespaced"
    }

    namespace_selector {
      match_expressions {
        key      = "runlevel"
        operator = "NotIn"
        values   = ["0", "1"]
      }
      match_expressions {
        key      = "openshift.io/run-level"
        operator = "NotIn"
        values   = ["0", "1"]
      }
      match_expressions {
        key      = local.opt_expression.key
        operator = local.opt_expression.operator
        values   = local.opt_expression.values
      }
    }
  }

  # A pod on a Multus network must not start without its MACs (M1): fail closed, as KubeMacPool's pod webhook.
  # Opt-in by default, so only namespaces labelled mutatepods.kubemacpool.io=allocate depend on the function.
  webhook {
    name                      = "mutatepods.kubemacpool.io"
    admission_review_versions = ["v1", "v1beta1"]
    failure_policy            = "Fail"
    match_policy              = "Equivalent"
    reinvocation_policy       = "Never"
    side_effects              = "NoneOnDryRun"
    timeout_seconds           = var.timeout_seconds

    client_config {
      url = "${local.base_url}/t/${local.credentials.pod}/mutate-pods"
    }

    rule {
      api_groups   = [""]
      api_versions = ["v1"]
      operations   = ["CREATE"]
      resources    = ["pods"]
      scope        = "Namespaced"
    }

    namespace_selector {
      match_expressions {
        key      = "runlevel"
        operator = "NotIn"
        values   = ["0", "1"]
      }
      match_expressions {
        key      = "openshift.io/run-level"
        operator = "NotIn"
        values   = ["0", "1"]
      }
      match_expressions {
        key      = local.pod_opt_expression.key
        operator = local.pod_opt_expression.operator
        values   = local.pod_opt_expression.values
      }
    }

    # virt-launcher pods: their MACs are their VM's.
    object_selector {
      match_expressions {
        key      = "kubevirt.io"
        operator = "NotIn"
        values   = ["virt-launcher"]
      }
    }
  }

  # Fail-open, with the release credential, as the VM release (M5).
  webhook {
    name                      = "releasepods.kubemacpool.io"
    admission_review_versions = ["v1", "v1beta1"]
    failure_policy            = "Ignore"
    match_policy              = "Equivalent"
    reinvocation_policy       = "Never"
    side_effects              = "NoneOnDryRun"
    timeout_seconds           = var.timeout_seconds

    client_config {
      url = "${local.base_url}/t/${local.credentials.release}/mutate-pods"
    }

    rule {
      api_groups   = [""]
      api_versions = ["v1"]
      operations   = ["DELETE"]
      resources    = ["pods"]
      scope        = "Namespaced"
    }

    namespace_selector {
      match_expressions {
        key      = "runlevel"
        operator = "NotIn"
        values   = ["0", "1"]
      }
      match_expressions {
        key      = "openshift.io/run-level"
        operator = "NotIn"
        values   = ["0", "1"]
      }
      match_expressions {
        key      = local.pod_opt_expression.key
        operator = local.pod_opt_expression.operator
        values   = local.pod_opt_expression.values
      }
    }

    object_selector {
      match_expressions {
        key      = "kubevirt.io"
        operator = "NotIn"
        values   = ["virt-launcher"]
      }
    }
  }
}

resource "kubernetes_validating_webhook_configuration_v1" "macpool" {
  metadata {
    name   = "macpool-validator"
    labels = local.labels
  }

  # Fail-open: namespace changes never wait on the function; reconcile resends every namespace's labels.
  # No opt term in the selector: the function must see opt label changes in both directions.
  webhook {
    name                      = "syncnamespaces.kubemacpool.io"
    admission_review_versions = ["v1", "v1beta1"]
    failure_policy            = "Ignore"
    match_policy              = "Equivalent"
    side_effects              = "NoneOnDryRun"
    timeout_seconds           = var.timeout_seconds

    client_config {
      url = "${local.base_url}/t/${local.credentials.namespace_sync}/validate-namespaces"
    }

    rule {
      api_groups   = [""]
      api_versions = ["v1"]
      operations   = ["CREATE", "UPDATE", "DELETE"]
      resources    = ["namespaces"]
      scope        = "Cluster"
    }

    namespace_selector {
      match_expressions {
        key      = "runlevel"
        operator = "NotIn"
        values   = ["0", "1"]
      }
      match_expressions {
        key      = "openshift.io/run-level"
        operator = "NotIn"
        values   = ["0", "1"]
      }
    }
  }

  # Fail-open: HyperConverged edits stay possible with the function down; they are then not synced.
  webhook {
    name                      = "validatehyperconverged.kubemacpool.io"
    admission_review_versions = ["v1", "v1beta1"]
    failure_policy            = "Ignore"
    match_policy              = "Equivalent"
    side_effects              = "NoneOnDryRun"
    timeout_seconds           = var.timeout_seconds

    client_config {
      url = "${local.base_url}/t/${local.credentials.hyperconverged_sync}/validate-hyperconverged"
    }

    rule {
      api_groups   = ["hco.kubevirt.io"]
      api_versions = ["v1beta1"]
      operations   = ["CREATE", "UPDATE"]
      resources    = ["hyperconvergeds"]
      scope        = "Namespaced"
    }

    namespace_selector {
      match_expressions {
        key      = "runlevel"
        operator = "NotIn"
        values   = ["0", "1"]
      }
      match_expressions {
        key      = "openshift.io/run-level"
        operator = "NotIn"
        values   = ["0", "1"]
      }
    }
  }
}
