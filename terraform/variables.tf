variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project that hosts the function, Firestore and the token secret."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (not its name or number): 6 to 30 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the function and of its source bucket, e.g. us-central1."
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or europe-west1."
  }
}

variable "firestore_location" {
  type        = string
  description = "Location of the (default) Firestore database: a region (e.g. us-central1) or a multi-region (nam5, eur3). Null means var.region, which gives the lowest write latency. It cannot be changed after creation."
  default     = null

  validation {
    condition     = var.firestore_location == null || can(regex("^[a-z0-9]+(-[a-z0-9]+)*$", var.firestore_location))
    error_message = "firestore_location must be a Firestore location ID such as us-central1, nam5 or eur3 (lower-case letters, digits and hyphens)."
  }
}

variable "function_name" {
  type        = string
  description = "Name of the Cloud Function (and of its Cloud Run service); also the prefix of the service accounts, bucket and log-based metrics."
  default     = "macpool"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,22}[a-z0-9]$", var.function_name))
    error_message = "function_name must be 2 to 24 characters: lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen (it also names the service accounts, which allow at most 30 characters)."
  }
}

variable "source_dir" {
  type        = string
  description = "Directory of the macpool repository to package and deploy. Null means the repository that contains this module (\"$${path.module}/..\")."
  default     = null
}

variable "mac_range" {
  type = object({
    start = string
    end   = string
  })
  description = <<-EOT
    Initial MAC pool range, written to Firestore document config/kubeMacPoolConfiguration (fields rangeStart, rangeEnd)
    on the first apply only; later edits in Firestore (operators, the HyperConverged sync, the macpool CLI) are kept.
    Both ends are 48-bit MACs written as six colon-separated hex octets (xx:xx:xx:xx:xx:xx; "-" separators are not
    accepted here), unicast (the second hex digit is even), and start <= end as integers. One object so that one
    validation block sees both ends.
  EOT
  default = {
    start = "02:00:00:00:00:00"
    end   = "02:FF:FF:FF:FF:FF"
  }

  validation {
    condition     = alltrue([for mac in [var.mac_range.start, var.mac_range.end] : can(regex("^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", mac))])
    error_message = "mac_range.start and mac_range.end must be 48-bit MAC addresses written as six colon-separated hex octets, e.g. 02:00:00:00:00:00."
  }

  validation {
    condition     = alltrue([for mac in [var.mac_range.start, var.mac_range.end] : can(regex("^[0-9A-Fa-f][02468AaCcEe]", mac))])
    error_message = "mac_range.start and mac_range.end must be unicast: the least significant bit of the first octet must be clear (second hex digit 0, 2, 4, 6, 8, A, C or E)."
  }

  validation {
    # try(): a malformed MAC is reported by the first block alone.
    condition     = try(parseint(replace(var.mac_range.start, ":", ""), 16) <= parseint(replace(var.mac_range.end, ":", ""), 16), true)
    error_message = "mac_range.start must not be greater than mac_range.end (compared as 48-bit integers; a one-MAC range is allowed)."
  }
}

variable "mac_additional_ranges" {
  type = list(object({
    start = string
    end   = string
  }))
  description = <<-EOT
    More ranges of the pool, written with mac_range to config/kubeMacPoolConfiguration (field additionalRanges, a list
    of {rangeStart, rangeEnd} maps) on the first apply only. The pool is the union of mac_range and these, minus
    mac_excluded_ranges; multicast MACs are never handed out, nor universally administered ones from a range whose
    two ends are locally administered. Each entry is checked as mac_range is; a one-MAC range has start = end.
  EOT
  default = []

  validation {
    condition     = length(var.mac_additional_ranges) <= 256
    error_message = "mac_additional_ranges must hold at most 256 ranges."
  }

  validation {
    condition     = alltrue([for r in var.mac_additional_ranges : can(regex("^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", r.start)) && can(regex("^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", r.end))])
    error_message = "Every start and end of mac_additional_ranges must be a 48-bit MAC address written as six colon-separated hex octets, e.g. 0A:00:00:00:00:00."
  }

  validation {
    condition     = alltrue([for r in var.mac_additional_ranges : can(regex("^[0-9A-Fa-f][02468AaCcEe]", r.start)) && can(regex("^[0-9A-Fa-f][02468AaCcEe]", r.end))])
    error_message = "Every start and end of mac_additional_ranges must be unicast: the least significant bit of the first octet must be clear (second hex digit 0, 2, 4, 6, 8, A, C or E)."
  }

  validation {
    condition     = alltrue([for r in var.mac_additional_ranges : try(parseint(replace(r.start, ":", ""), 16) <= parseint(replace(r.end, ":", ""), 16), true)])
    error_message = "In every entry of mac_additional_ranges, start must not be greater than end (compared as 48-bit integers; a one-MAC range is allowed)."
  }
}

variable "mac_excluded_ranges" {
  type = list(object({
    start = string
    end   = string
  }))
  description = <<-EOT
    MACs the pool never hands out automatically (appliances, a block kept for another system), written to
    config/kubeMacPoolConfiguration (field excludedRanges) on the first apply only. A user may still request one
    explicitly: it is claimed with a warning. Each entry is checked as mac_range is; one MAC has start = end.
  EOT
  default = []

  validation {
    condition     = length(var.mac_excluded_ranges) <= 256
    error_message = "mac_excluded_ranges must hold at most 256 ranges."
  }

  validation {
    condition     = alltrue([for r in var.mac_excluded_ranges : can(regex("^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", r.start)) && can(regex("^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", r.end))])
    error_message = "Every start and end of mac_excluded_ranges must be a 48-bit MAC address written as six colon-separated hex octets, e.g. 02:00:00:00:00:10."
  }

  validation {
    condition     = alltrue([for r in var.mac_excluded_ranges : can(regex("^[0-9A-Fa-f][02468AaCcEe]", r.start)) && can(regex("^[0-9A-Fa-f][02468AaCcEe]", r.end))])
    error_message = "Every start and end of mac_excluded_ranges must be unicast: the least significant bit of the first octet must be clear (second hex digit 0, 2, 4, 6, 8, A, C or E)."
  }

  validation {
    condition     = alltrue([for r in var.mac_excluded_ranges : try(parseint(replace(r.start, ":", ""), 16) <= parseint(replace(r.end, ":", ""), 16), true)])
    error_message = "In every entry of mac_excluded_ranges, start must not be greater than end (compared as 48-bit integers; a one-MAC range is allowed)."
  }
}

variable "clusters" {
  type = list(object({
    name            = string
    token           = optional(string)
    previous_tokens = optional(list(string), [])
  }))
  description = <<-EOT
    Clusters allowed to call the function, all sharing one pool. name identifies the cluster in Firestore and logs.
    token is its secret (generate one with `openssl rand -hex 32`); leave it null to let Terraform generate one
    (read it with `terraform output -json cluster_tokens`). previous_tokens stay accepted too, for rotation without
    downtime: put the old token there, apply, then remove it once the cluster uses the new one.
  EOT
  sensitive   = true

  validation {
    condition     = length(var.clusters) > 0
    error_message = "clusters must name at least one cluster: the function refuses to start without tokens."
  }

  validation {
    condition     = alltrue([for c in var.clusters : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", c.name))])
    error_message = "Every cluster name must be a DNS label: 1 to 63 lower-case letters, digits or hyphens, starting and ending with a letter or digit."
  }

  validation {
    condition     = length(distinct([for c in var.clusters : c.name])) == length(var.clusters)
    error_message = "Cluster names must be unique; to accept two tokens for one cluster, use its previous_tokens."
  }

  validation {
    condition     = alltrue([for t in flatten([for c in var.clusters : concat(c.token == null ? [] : [c.token], c.previous_tokens)]) : can(regex("^[A-Za-z0-9._~-]{16,256}$", t))])
    error_message = "Every token must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ - (e.g. the output of `openssl rand -hex 32`)."
  }

  validation {
    condition     = length(distinct(flatten([for c in var.clusters : concat(c.token == null ? [] : [c.token], c.previous_tokens)]))) == length(flatten([for c in var.clusters : concat(c.token == null ? [] : [c.token], c.previous_tokens)]))
    error_message = "Every token must be distinct: the token names the cluster that sends it."
  }
}

variable "available_memory" {
  type        = string
  description = "Memory of each function instance, e.g. 512M or 1Gi."
  default     = "512M"

  validation {
    condition     = can(regex("^[1-9][0-9]*(M|Mi|G|Gi)$", var.available_memory))
    error_message = "available_memory must be a whole number followed by M, Mi, G or Gi, e.g. 512M; with one CPU, 512M to 4G are allowed."
  }
}

variable "min_instance_count" {
  type        = number
  description = "Instances kept warm. At least 1 so that admissions never wait for a cold start (the API server times out after 10 s)."
  default     = 1

  validation {
    condition     = var.min_instance_count >= 0 && var.min_instance_count <= 100 && floor(var.min_instance_count) == var.min_instance_count
    error_message = "min_instance_count must be a whole number from 0 to 100 (0 allows cold starts on the admission path)."
  }
}

variable "max_instance_count" {
  type        = number
  description = "Upper bound on instances; bounds cost and Firestore load."
  default     = 10

  validation {
    condition     = var.max_instance_count >= 1 && var.max_instance_count <= 1000 && floor(var.max_instance_count) == var.max_instance_count
    error_message = "max_instance_count must be a whole number from 1 to 1000."
  }
}

variable "max_instance_request_concurrency" {
  type        = number
  description = "Concurrent requests per instance (the function runs with one CPU, which concurrency above 1 requires)."
  default     = 16

  validation {
    condition     = var.max_instance_request_concurrency >= 1 && var.max_instance_request_concurrency <= 1000 && floor(var.max_instance_request_concurrency) == var.max_instance_request_concurrency
    error_message = "max_instance_request_concurrency must be a whole number from 1 to 1000."
  }
}

variable "enable_allocation_metric" {
  type        = bool
  description = "Create the log-based metric <function_name>-allocations (log lines with jsonPayload.event=\"mac-allocated\")."
  default     = true
}

variable "enable_range_full_metric" {
  type        = bool
  description = "Create the log-based metric <function_name>-range-full (jsonPayload.event=\"range-full\": admissions denied because the range is full)."
  default     = true
}

variable "enable_collision_metric" {
  type        = bool
  description = "Create the log-based metric <function_name>-collisions (jsonPayload.event=\"mac-collision\": two VMs found with one MAC)."
  default     = true
}

variable "enable_alerts" {
  type        = bool
  description = "Create alert policies on range exhaustion and MAC collisions. An alert whose metric is disabled is skipped."
  default     = false
}

variable "alert_notification_channels" {
  type        = list(string)
  description = "Notification channels of the alert policies, as projects/PROJECT/notificationChannels/ID."
  default     = []

  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each notification channel must be a full name: projects/PROJECT/notificationChannels/ID."
  }
}

variable "exclude_request_logs" {
  type        = bool
  description = "Exclude the function's Cloud Run request logs (log run.googleapis.com/requests, whose URLs carry webhook credentials) from the project's _Default log bucket (SPEC S6). The function's own structured log line per request is kept either way."
  default     = true
}
