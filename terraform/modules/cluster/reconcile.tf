# Reconcile (SPEC R1-R6, M6): every few minutes, send the cluster's VMs, pods on Multus networks and namespaces to the function, which confirms
# claims, frees abandoned ones, heals missing ones and reports collisions.

locals {
  reconcile_name = "macpool-reconcile"
  # M6: only pods on Multus networks (the networks annotation), not virt-launcher pods (their MACs are their VM's),
  # and of each only what the reconcile reads (finished pods too: their phase shows their MACs are off the wire), so
  # 10,000 such pods fit the request limit. The image's jq does the filtering; no kubectl selector can select on an
  # annotation.
  reconcile_pod_filter = <<-EOT
    {kind: "List", items: [.items[]
      | select(.metadata.annotations["k8s.v1.cni.cncf.io/networks"] != null)
      | select((.metadata.labels["kubevirt.io"] // "") != "virt-launcher")
      | {kind: "Pod",
         metadata: {name: .metadata.name, namespace: .metadata.namespace, uid: .metadata.uid,
                    deletionTimestamp: .metadata.deletionTimestamp,
                    annotations: (.metadata.annotations | with_entries(select(.key == "k8s.v1.cni.cncf.io/networks" or .key == "k8s.v1.cni.cncf.io/network-status")))},
         status: {phase: .status.phase}}]}
  EOT
  # POSIX sh, no pipes: each step writes a file, and -e stops the job at the first failure, so a failed kubectl
  # sends nothing rather than a partial list ("pods": true tells the function the list covers every pod, so a
  # missing one would count as gone). gzip keeps 10,000 VMs (tens of MB of JSON) far below the 32 MiB request
  # limit; the function inflates Content-Encoding: gzip. The credential goes in the Authorization header:
  # /reconcile refuses one in the URL (SPEC S4).
  reconcile_script = <<-EOT
    set -eu
    kubectl get virtualmachines,namespaces -A -o json > "$HOME/vms.json"
    kubectl get pods -A -o json > "$HOME/all-pods.json"
    jq -c "$MACPOOL_POD_FILTER" "$HOME/all-pods.json" > "$HOME/pods.json"
    rm "$HOME/all-pods.json"
    jq -c -n --slurpfile vms "$HOME/vms.json" --slurpfile pods "$HOME/pods.json" '{inventory: [$vms[0], $pods[0]], pods: true}' > "$HOME/inventory.json"
    gzip -f "$HOME/inventory.json"
    curl -sS --fail-with-body -X POST -H "Authorization: Bearer $MACPOOL_RECONCILE_TOKEN" -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' --data-binary @"$HOME/inventory.json.gz" "$MACPOOL_URL/reconcile"
  EOT
}

resource "kubernetes_service_account_v1" "reconcile" {
  metadata {
    name      = local.reconcile_name
    namespace = kubernetes_namespace_v1.macpool.metadata[0].name
    labels    = local.labels
  }
}

# Read-only inventory: VMs, pods and namespaces, nothing else.
resource "kubernetes_cluster_role_v1" "reconcile" {
  metadata {
    name   = local.reconcile_name
    labels = local.labels
  }

  rule {
    api_groups = ["kubevirt.io"]
    resources  = ["virtualmachines"]
    verbs      = ["get", "list"]
  }

  rule {
    api_groups = [""]
    resources  = ["namespaces", "pods"]
    verbs      = ["get", "list"]
  }
}

resource "kubernetes_cluster_role_binding_v1" "reconcile" {
  metadata {
    name   = local.reconcile_name
    labels = local.labels
  }

  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "ClusterRole"
    name      = kubernetes_cluster_role_v1.reconcile.metadata[0].name
  }

  subject {
    kind      = "ServiceAccount"
    name      = kubernetes_service_account_v1.reconcile.metadata[0].name
    namespace = kubernetes_service_account_v1.reconcile.metadata[0].namespace
  }
}

resource "kubernetes_cron_job_v1" "reconcile" {
  metadata {
    name      = local.reconcile_name
    namespace = kubernetes_namespace_v1.macpool.metadata[0].name
    labels    = local.labels
  }

  spec {
    schedule                      = var.schedule
    concurrency_policy            = "Forbid"
    starting_deadline_seconds     = 300
    successful_jobs_history_limit = 1
    failed_jobs_history_limit     = 3

    job_template {
      metadata {
        labels = local.labels
      }

      spec {
        backoff_limit           = 1
        active_deadline_seconds = 600

        template {
          metadata {
            labels = local.labels
          }

          spec {
            service_account_name = kubernetes_service_account_v1.reconcile.metadata[0].name
            restart_policy       = "Never"

            security_context {
              run_as_non_root = true
              run_as_user     = 65534
              run_as_group    = 65534
              seccomp_profile {
                type = "RuntimeDefault"
              }
            }

            container {
              name    = "reconcile"
              image   = var.image
              command = ["/bin/sh", "-c", local.reconcile_script]

              env_from {
                secret_ref {
                  name = kubernetes_secret_v1.macpool.metadata[0].name
                }
              }

              # kubectl writes its discovery cache, and the job its two lists, under $HOME (the emptyDir /tmp).
              env {
                name  = "HOME"
                value = "/tmp"
              }
              env {
                name  = "MACPOOL_POD_FILTER"
                value = local.reconcile_pod_filter
              }

              security_context {
                allow_privilege_escalation = false
                read_only_root_filesystem  = true
                capabilities {
                  drop = ["ALL"]
                }
              }

              resources {
                requests = {
                  cpu    = "100m"
                  memory = "256Mi"
                }
                # kubectl holds the whole pod list in memory: raise this for clusters of tens of thousands of pods.
                limits = {
                  memory = "2Gi"
                }
              }

              volume_mount {
                name       = "tmp"
                mount_path = "/tmp"
              }
            }

            volume {
              name = "tmp"
              empty_dir {}
            }
          }
        }
      }
    }
  }
}
