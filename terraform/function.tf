locals {
  source_dir = coalesce(var.source_dir, "${path.module}/..")

  # Everything Cloud Build does not need: the build runs `npm ci` and `npm run gcp-build` on the rest.
  # terraform/ and examples/ also keep state files and the archive itself out of the upload.
  source_excludes = [
    ".git",
    "node_modules",
    "dist",
    "coverage",
    "terraform",
    "test",
    "bench",
    "docs",
    "examples",
  ]
}

data "archive_file" "source" {
  type        = "zip"
  source_dir  = local.source_dir
  excludes    = local.source_excludes
  # Fixed modes (the provider already zeroes timestamps): the same code gives the same hash on every machine.
  output_file_mode = "0644"
  output_path = "${path.root}/.terraform/tmp/${var.function_name}-source.zip"
}

resource "google_storage_bucket" "source" {
  project                     = var.project_id
  name                        = "${var.project_id}-${var.function_name}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Holds only build inputs that Terraform can upload again.
  force_destroy = true

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  # Named by the archive's hash: a code change is a new object, which makes the function redeploy.
  name   = "${var.function_name}-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

resource "google_cloudfunctions2_function" "macpool" {
  project     = var.project_id
  name        = var.function_name
  location    = var.region
  description = "macpool: KubeVirt VM MAC address allocation (admission webhooks and reconcile)."

  build_config {
    runtime         = "nodejs22"
    entry_point     = "macpool"
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory = var.available_memory
    # Concurrency above 1 needs a whole CPU.
    available_cpu                    = "1"
    min_instance_count               = var.min_instance_count
    max_instance_count               = var.max_instance_count
    max_instance_request_concurrency = var.max_instance_request_concurrency
    # Admissions answer within 8 s; a reconcile of a large cluster may take most of a minute.
    timeout_seconds = 300
    # The API servers call in from outside Google Cloud; requests are authenticated by cluster token (SPEC S1).
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.function.email

    environment_variables = {
      GOOGLE_CLOUD_PROJECT = var.project_id
      NODE_ENV             = "production"
    }

    secret_environment_variables {
      key        = "MACPOOL_TOKENS"
      project_id = var.project_id
      secret     = google_secret_manager_secret.tokens.secret_id
      # A pinned version, not "latest": a token change rolls out a new revision instead of waiting for restarts.
      version = google_secret_manager_secret_version.tokens.version
    }
  }

  lifecycle {
    precondition {
      condition     = var.min_instance_count <= var.max_instance_count
      error_message = "min_instance_count must not be greater than max_instance_count."
    }
  }

  depends_on = [
    google_project_service.apis,
    google_firestore_database.default,
    google_project_iam_member.function,
    google_project_iam_member.build,
    google_secret_manager_secret_iam_member.function_tokens,
  ]
}

# Public invocation: Kubernetes API servers cannot present Google credentials, so the per-cluster token in the
# URL path is the authentication (SPEC S1; trade-off in README.md). A 2nd-gen function is a Cloud Run service, and
# roles/run.invoker can only be granted on that service.
resource "google_cloud_run_v2_service_iam_member" "public" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.macpool.service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}
