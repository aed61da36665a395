provider "google" {
  project = var.project_id
  region  = var.region
  # Bill API calls made with user credentials (gcloud auth application-default login) to this project;
  # Firestore and Secret Manager refuse them otherwise.
  user_project_override = true
  billing_project       = var.project_id
}

# Terraform cannot iterate over provider configurations: each cluster has its own alias here and its own
# module block below. Both use the same pool, so their VMs never share a MAC.
provider "kubernetes" {
  alias          = "cluster_a"
  config_path    = var.kubeconfig_path
  config_context = var.cluster_a_context
}

provider "kubernetes" {
  alias          = "cluster_b"
  config_path    = var.kubeconfig_path
  config_context = var.cluster_b_context
}

locals {
  # Token null: Terraform generates one (see the root module's clusters variable to bring your own).
  clusters = [
    { name = "cluster-a" },
    { name = "cluster-b" },
  ]
}

module "macpool" {
  source     = "../.."
  project_id = var.project_id
  region     = var.region
  clusters   = local.clusters
}

module "cluster_a" {
  source       = "../../modules/cluster"
  providers    = { kubernetes = kubernetes.cluster_a }
  function_url = module.macpool.function_url
  token        = module.macpool.cluster_tokens["cluster-a"]
}

module "cluster_b" {
  source       = "../../modules/cluster"
  providers    = { kubernetes = kubernetes.cluster_b }
  function_url = module.macpool.function_url
  token        = module.macpool.cluster_tokens["cluster-b"]
}
