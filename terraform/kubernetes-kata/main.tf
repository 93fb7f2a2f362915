# The kubernetes template with the pod in a Kata Containers sandbox: each workspace runs in its own
# lightweight VM (hardware isolation) instead of sharing the node's kernel. Needs Kata installed on the
# nodes (kata-deploy) and a RuntimeClass; nodes need hardware virtualization (or nested virtualization).
terraform {
  required_providers {
    coder = {
      source = "coder/coder"
    }
    kubernetes = {
      source = "hashicorp/kubernetes"
    }
  }
}

variable "use_kubeconfig" {
  type        = bool
  description = "Use the host's kubeconfig (~/.kube/config or KUBECONFIG) instead of the in-cluster service account."
  default     = false
}

variable "namespace" {
  type        = string
  description = "The Kubernetes namespace to create workspaces in (it must exist)."
  default     = "kiln-workspaces"
}

variable "runtime_class" {
  type        = string
  description = "The Kata RuntimeClass to run workspaces with (kata-deploy creates kata, kata-qemu, kata-clh, kata-fc …)."
  default     = "kata"
}

variable "image" {
  type        = string
  description = "Workspace image. It needs /bin/sh and curl or wget; Node.js 20+ is used when present, else the control plane's is downloaded (glibc images)."
  default     = "node:22-bookworm"
}

provider "kubernetes" {
  # Authenticate via ~/.kube/config or a Coder-style in-cluster service account.
  config_path = var.use_kubeconfig == true ? "~/.kube/config" : null
}

data "coder_provisioner" "me" {}
data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

data "coder_parameter" "cpu" {
  name         = "cpu"
  display_name = "CPU"
  description  = "The number of CPU cores"
  default      = "2"
  icon         = "/icon/memory.svg"
  mutable      = true
  option {
    name  = "2 Cores"
    value = "2"
  }
  option {
    name  = "4 Cores"
    value = "4"
  }
  option {
    name  = "8 Cores"
    value = "8"
  }
}

data "coder_parameter" "memory" {
  name         = "memory"
  display_name = "Memory"
  description  = "The amount of memory in GB"
  default      = "4"
  icon         = "/icon/memory.svg"
  mutable      = true
  option {
    name  = "4 GB"
    value = "4"
  }
  option {
    name  = "8 GB"
    value = "8"
  }
  option {
    name  = "16 GB"
    value = "16"
  }
}

data "coder_parameter" "home_disk_size" {
  name         = "home_disk_size"
  display_name = "Home disk size"
  description  = "The size of the home disk in GB"
  default      = "10"
  type         = "number"
  icon         = "/emojis/1f4be.png"
  mutable      = false
  validation {
    min       = 1
    max       = 99999
    monotonic = "increasing"
  }
}

resource "coder_agent" "main" {
  os                      = "linux"
  arch                    = data.coder_provisioner.me.arch
  dir                     = "/home/workspace"
  startup_script_behavior = "blocking"
  startup_script          = <<-EOT
    set -e
    if [ ! -f /home/workspace/.init_done ]; then
      cp -rT /etc/skel /home/workspace 2>/dev/null || true
      touch /home/workspace/.init_done
    fi
  EOT

  metadata {
    display_name = "Load average"
    key          = "load"
    script       = "cut -d' ' -f1-3 /proc/loadavg"
    interval     = 10
    timeout      = 1
  }
  metadata {
    display_name = "Home disk"
    key          = "home_disk"
    script       = "df -h /home/workspace | awk 'NR==2 {print $3 \" / \" $2}'"
    interval     = 60
    timeout      = 2
  }
}

resource "kubernetes_persistent_volume_claim" "home" {
  metadata {
    name      = "kiln-${data.coder_workspace.me.id}-home"
    namespace = var.namespace
    labels = {
      "app.kubernetes.io/name"     = "kiln-pvc"
      "app.kubernetes.io/instance" = "kiln-pvc-${data.coder_workspace.me.id}"
      "app.kubernetes.io/part-of"  = "kiln"
      "kiln.dev/owner"             = data.coder_workspace_owner.me.name
      "kiln.dev/workspace-id"      = data.coder_workspace.me.id
    }
  }
  wait_until_bound = false
  spec {
    access_modes = ["ReadWriteOnce"]
    resources {
      requests = {
        storage = "${data.coder_parameter.home_disk_size.value}Gi"
      }
    }
  }
}

resource "kubernetes_deployment" "main" {
  count            = data.coder_workspace.me.start_count
  depends_on       = [kubernetes_persistent_volume_claim.home]
  wait_for_rollout = false
  metadata {
    name      = "kiln-${data.coder_workspace.me.id}"
    namespace = var.namespace
    labels = {
      "app.kubernetes.io/name"     = "kiln-workspace"
      "app.kubernetes.io/instance" = "kiln-workspace-${data.coder_workspace.me.id}"
      "app.kubernetes.io/part-of"  = "kiln"
      "kiln.dev/owner"             = data.coder_workspace_owner.me.name
      "kiln.dev/workspace-id"      = data.coder_workspace.me.id
    }
  }

  spec {
    replicas = 1
    selector {
      match_labels = {
        "app.kubernetes.io/name"     = "kiln-workspace"
        "app.kubernetes.io/instance" = "kiln-workspace-${data.coder_workspace.me.id}"
      }
    }
    strategy {
      type = "Recreate"
    }

    template {
      metadata {
        labels = {
          "app.kubernetes.io/name"     = "kiln-workspace"
          "app.kubernetes.io/instance" = "kiln-workspace-${data.coder_workspace.me.id}"
          "app.kubernetes.io/part-of"  = "kiln"
        }
      }
      spec {
        # The pod runs in a Kata VM: its own guest kernel, isolated from the node and other workspaces.
        runtime_class_name = var.runtime_class

        security_context {
          run_as_user     = 1000
          fs_group        = 1000
          run_as_non_root = true
        }

        container {
          name              = "dev"
          image             = var.image
          image_pull_policy = "IfNotPresent"
          command           = ["sh", "-c", coder_agent.main.init_script]
          security_context {
            run_as_user = "1000"
          }
          env {
            name  = "CODER_AGENT_TOKEN"
            value = coder_agent.main.token
          }
          env {
            name  = "HOME"
            value = "/home/workspace"
          }
          resources {
            # Kata sizes the VM from the limits; requests leave room for the VM's own overhead.
            requests = {
              "cpu"    = "500m"
              "memory" = "1Gi"
            }
            limits = {
              "cpu"    = "${data.coder_parameter.cpu.value}"
              "memory" = "${data.coder_parameter.memory.value}Gi"
            }
          }
          volume_mount {
            mount_path = "/home/workspace"
            name       = "home"
            read_only  = false
          }
        }

        volume {
          name = "home"
          persistent_volume_claim {
            claim_name = kubernetes_persistent_volume_claim.home.metadata.0.name
            read_only  = false
          }
        }

        affinity {
          # Spread workspaces across nodes.
          pod_anti_affinity {
            preferred_during_scheduling_ignored_during_execution {
              weight = 1
              pod_affinity_term {
                topology_key = "kubernetes.io/hostname"
                label_selector {
                  match_expressions {
                    key      = "app.kubernetes.io/name"
                    operator = "In"
                    values   = ["kiln-workspace"]
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

resource "coder_metadata" "deployment" {
  count       = data.coder_workspace.me.start_count
  resource_id = kubernetes_deployment.main[0].id
  item {
    key   = "cpu"
    value = "${data.coder_parameter.cpu.value} cores"
  }
  item {
    key   = "memory"
    value = "${data.coder_parameter.memory.value} GiB"
  }
}
