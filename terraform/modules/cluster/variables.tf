variable "function_url" {
  type        = string
  description = "Base https URL of the macpool function (the root module's function_url output). One trailing slash is tolerated."

  validation {
    condition     = can(regex("^https://[^/?#@\\s]+(/[^?#\\s]*)?$", var.function_url))
    error_message = "function_url must be an https URL without query string, fragment or user info, e.g. https://macpool-abc123-uc.a.run.app."
  }
}

variable "token" {
  type        = string
  description = "This cluster's token, as listed for it in the root module's clusters (output cluster_tokens). It is part of every webhook URL."
  sensitive   = true

  validation {
    condition     = can(regex("^[A-Za-z0-9._~-]{16,256}$", var.token))
    error_message = "token must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ - (e.g. the output of `openssl rand -hex 32`)."
  }
}

variable "opt_mode" {
  type        = string
  description = "opt-out (default): every namespace is served except those labelled mutatevirtualmachines.kubemacpool.io=ignore. opt-in: only namespaces labelled mutatevirtualmachines.kubemacpool.io=allocate are served."
  default     = "opt-out"

  validation {
    condition     = contains(["opt-out", "opt-in"], var.opt_mode)
    error_message = "opt_mode must be opt-out or opt-in."
  }
}

variable "pod_opt_mode" {
  type        = string
  description = "The pod webhooks (pods on Multus networks). opt-in (default, as KubeMacPool ships it): only namespaces labelled mutatepods.kubemacpool.io=allocate are served. opt-out: every namespace except those labelled mutatepods.kubemacpool.io=ignore. Match config/settings podOptMode."
  default     = "opt-in"

  validation {
    condition     = contains(["opt-out", "opt-in"], var.pod_opt_mode)
    error_message = "pod_opt_mode must be opt-out or opt-in."
  }
}

variable "timeout_seconds" {
  type        = number
  description = "Webhook timeout in seconds. The function answers within 8 s (SPEC F1), so keep the default 10."
  default     = 10

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 30 && floor(var.timeout_seconds) == var.timeout_seconds
    error_message = "timeout_seconds must be a whole number from 1 to 30 (the API server's limit)."
  }
}

variable "namespace" {
  type        = string
  description = "Namespace the module creates for the reconcile CronJob and its Secret."
  default     = "macpool"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label: 1 to 63 lower-case letters, digits or hyphens, starting and ending with a letter or digit."
  }
}

variable "schedule" {
  type        = string
  description = "Cron schedule of the reconcile job (five fields or a macro such as @hourly)."
  default     = "*/5 * * * *"

  validation {
    condition     = can(regex("^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^ ]+( +[^ ]+){4})$", var.schedule))
    error_message = "schedule must be a cron expression with five space-separated fields (e.g. */5 * * * *) or one of @hourly, @daily, @weekly, @monthly, @yearly."
  }
}

variable "image" {
  type        = string
  description = "Image of the reconcile job; it needs /bin/sh, kubectl, jq, gzip and curl. The default is alpine/k8s from Docker Hub; mirror it to your own registry for production or air-gapped clusters."
  default     = "docker.io/alpine/k8s:1.34.1"

  validation {
    condition     = can(regex("^[^\\s]+$", var.image))
    error_message = "image must be an image reference without whitespace, e.g. registry.example.com/tools/k8s:1.34.1."
  }
}
