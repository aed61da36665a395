resource "google_firestore_database" "default" {
  project     = var.project_id
  name        = "(default)"
  location_id = coalesce(var.firestore_location, var.region)
  type        = "FIRESTORE_NATIVE"
  # `terraform destroy` forgets the database and keeps its data; delete it by hand when nothing needs it.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.apis]
}

# Garbage collection only: the function sets expireAt on released claims (release time + cool-down), and Firestore
# deletes them some time after that. Nothing depends on when.
resource "google_firestore_field" "macs_expire_at" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "macs"
  field      = "expireAt"

  ttl_config {}
}

# `macpool status` counts released claims still in their cool-down: an equality on state plus ranges on the
# document id and releasedAt, which needs this composite index. Admissions need none (equality
# filters and document-id ranges are served by single-field indexes).
resource "google_firestore_index" "macs_cooling_down" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "macs"

  fields {
    field_path = "state"
    order      = "ASCENDING"
  }
  fields {
    field_path = "releasedAt"
    order      = "ASCENDING"
  }
  fields {
    field_path = "__name__"
    order      = "ASCENDING"
  }
}

# The reconcile (R7) compares, per cell, the count and digest sum of a cluster's bound claims: count() and
# sum("digest") over equality filters on cluster, state, (kind,) and the cell's bucket fields. These composite
# indexes serve those aggregations; shared/store.ts RECONCILE_INDEXES lists the same field sets, and
# test/unit/terraform.test.ts holds the two equal.
locals {
  reconcile_indexes = {
    "cell1"      = ["cluster", "state", "b1", "digest"]
    "cell2"      = ["cluster", "state", "b1", "b2", "digest"]
    "cell3"      = ["cluster", "state", "b1", "b2", "b3", "digest"]
    "kind-cell1" = ["cluster", "kind", "state", "b1", "digest"]
    "kind-cell2" = ["cluster", "kind", "state", "b1", "b2", "digest"]
    "kind-cell3" = ["cluster", "kind", "state", "b1", "b2", "b3", "digest"]
  }
}

resource "google_firestore_index" "macs_reconcile" {
  for_each   = local.reconcile_indexes
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "macs"

  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }
}

# The initial range. Written on the first apply only: operators, the HyperConverged sync and the macpool CLI own
# the document afterwards, and Terraform must not revert their edits.
resource "google_firestore_document" "range" {
  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = "config"
  document_id = "kubeMacPoolConfiguration"
  fields = jsonencode({
    rangeStart       = { stringValue = var.mac_range.start }
    rangeEnd         = { stringValue = var.mac_range.end }
    additionalRanges = { arrayValue = { values = [for r in var.mac_additional_ranges : { mapValue = { fields = { rangeStart = { stringValue = r.start }, rangeEnd = { stringValue = r.end } } } }] } }
    excludedRanges   = { arrayValue = { values = [for r in var.mac_excluded_ranges : { mapValue = { fields = { rangeStart = { stringValue = r.start }, rangeEnd = { stringValue = r.end } } } }] } }
  })

  lifecycle {
    ignore_changes = [fields]
  }
}
