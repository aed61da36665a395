# SPEC S6: every request log line the platform writes carries the full URL (httpRequest.requestUrl), and the
# webhook URLs carry role credentials. Keep those lines out of the _Default bucket, which anyone with log viewer
# rights in the project reads. The function's own one line per request (jsonPayload: path without credential,
# status, duration) stays; so do the _Required bucket's audit logs, which no exclusion can touch.
resource "google_logging_project_exclusion" "request_logs" {
  count       = var.exclude_request_logs ? 1 : 0
  project     = var.project_id
  name        = "${var.function_name}-request-logs"
  description = "Cloud Run request logs of the ${var.function_name} function: their URLs carry webhook credentials (macpool SPEC S6)."
  filter      = <<-EOT
    resource.type="cloud_run_revision"
    resource.labels.service_name="${var.function_name}"
    log_id("run.googleapis.com/requests")
  EOT

  depends_on = [google_project_service.apis]
}

# Defense in depth: macpool reaches Firestore only with server credentials (IAM, roles/datastore.user), to which
# security rules never apply. Mobile and web clients are what rules govern; these deny them everything, instead of
# whatever rules a new database happens to start with.
resource "google_firebaserules_ruleset" "firestore" {
  project = var.project_id

  source {
    files {
      name    = "firestore.rules"
      content = file("${path.module}/firestore.rules")
    }
  }

  depends_on = [google_project_service.apis, google_firestore_database.default]

  lifecycle {
    # A ruleset in use cannot be deleted: the release moves to the new one first.
    create_before_destroy = true
  }
}

resource "google_firebaserules_release" "firestore" {
  project      = var.project_id
  name         = "cloud.firestore"
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.firestore.name}"
}
