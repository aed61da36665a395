variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project for macpool (billing enabled)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID: 6 to 30 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the function; Firestore is created in the same region."
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or europe-west1."
  }
}

variable "kubeconfig_path" {
  type        = string
  description = "kubeconfig file that holds a context for each cluster."
  default     = "~/.kube/config"
}

variable "cluster_a_context" {
  type        = string
  description = "kubeconfig context of cluster-a (cluster-admin rights are needed to create webhook configurations and RBAC)."
}

variable "cluster_b_context" {
  type        = string
  description = "kubeconfig context of cluster-b, which shares cluster-a's MAC pool."
}
