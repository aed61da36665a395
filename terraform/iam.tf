# Runtime identity: Firestore data access and the one token secret, nothing else. Logs written to stdout are
# collected by Cloud Run without any role on this account.
resource "google_service_account" "function" {
  project      = var.project_id
  account_id   = "${var.function_name}-run"
  display_name = "macpool function runtime"
  description  = "Runs the ${var.function_name} function: Firestore data access and the cluster token secret only."

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "function" {
  for_each = toset(["roles/datastore.user"])
  project  = var.project_id
  role     = each.value
  member   = google_service_account.function.member
}

resource "google_secret_manager_secret_iam_member" "function_tokens" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.tokens.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function.member
}

# Build identity: new projects have no usable default Cloud Build account (July 2024 change), so the function is
# built by its own account with the roles Cloud Run documents for source builds.
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.function_name}-build"
  display_name = "macpool function build"
  description  = "Builds the ${var.function_name} function from source with Cloud Build."

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/artifactregistry.writer",
    "roles/logging.logWriter",
    "roles/storage.objectAdmin",
  ])
  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
}
