# Log-based metrics on the function's structured log lines (SPEC O1): the `event` field is a stable contract.
locals {
  log_metrics = {
    allocations = {
      enabled     = var.enable_allocation_metric
      event       = "mac-allocated"
      description = "Admissions that allocated MACs (log message \"MACs allocated\")."
    }
    range-full = {
      enabled     = var.enable_range_full_metric
      event       = "range-full"
      description = "Admissions denied because the MAC range is full (log message \"MAC range is full\")."
    }
    collisions = {
      enabled     = var.enable_collision_metric
      event       = "mac-collision"
      description = "MAC collisions found by reconcile: two VMs with one MAC (log message \"MAC collision detected\")."
    }
  }

  alerts = {
    range-full = {
      title = "MAC range is full"
      doc   = "VM creations are being denied because every MAC of the pool range is claimed. Widen the range in Firestore document config/kubeMacPoolConfiguration (or the HyperConverged CR), or delete unused VMs."
    }
    collisions = {
      title = "MAC collision detected"
      doc   = "Reconcile found two VMs with the same MAC address. The function log line (jsonPayload.event=\"mac-collision\") names both; change the MAC of one of them."
    }
  }
}

resource "google_logging_metric" "events" {
  for_each    = { for k, m in local.log_metrics : k => m if m.enabled }
  project     = var.project_id
  name        = "${var.function_name}-${each.key}"
  description = each.value.description
  filter      = <<-EOT
    resource.type="cloud_run_revision"
    resource.labels.service_name="${var.function_name}"
    jsonPayload.event="${each.value.event}"
  EOT

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "cluster"
      value_type  = "STRING"
      description = "Cluster name from the token that authenticated the request."
    }
  }

  label_extractors = {
    cluster = "EXTRACT(jsonPayload.cluster)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "events" {
  for_each              = { for k, a in local.alerts : k => a if var.enable_alerts && local.log_metrics[k].enabled }
  project               = var.project_id
  display_name          = "${var.function_name}: ${each.value.title}"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }

  conditions {
    display_name = each.value.title

    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.events[each.key].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }
}
