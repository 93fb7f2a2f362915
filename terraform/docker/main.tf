# A Kiln workspace in a Docker container on the Docker host Kiln's provisioner reaches, written as
# Coder's own docker example is: the container runs the agent init script with the agent token.
terraform {
  required_providers {
    coder = {
      source = "coder/coder"
    }
    docker = {
      source = "kreuzwerker/docker"
    }
  }
}

variable "docker_socket" {
  type        = string
  description = "(Optional) Docker socket URI, e.g. unix:///var/run/docker.sock; empty uses DOCKER_HOST or the default."
  default     = ""
}

provider "docker" {
  host = var.docker_socket != "" ? var.docker_socket : null
}

data "coder_provisioner" "me" {}
data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

data "coder_parameter" "image" {
  name         = "image"
  display_name = "Image"
  description  = "Container image. It needs /bin/sh, and curl or wget; Node.js 20+ is used when present, else the control plane's is downloaded (glibc images)."
  type         = "string"
  default      = "node:22-bookworm"
  mutable      = true
  option {
    name  = "Node.js 22 (Debian bookworm)"
    value = "node:22-bookworm"
  }
  option {
    name  = "Node.js 20 (Debian bookworm)"
    value = "node:20-bookworm"
  }
  option {
    name  = "Ubuntu 24.04 (Node from the control plane)"
    value = "ubuntu:24.04"
  }
}

resource "coder_agent" "main" {
  arch                    = data.coder_provisioner.me.arch
  os                      = "linux"
  dir                     = "/home/workspace"
  startup_script_behavior = "blocking"
  startup_script          = <<-EOT
    set -e
    # Prepare the persistent home on first start.
    if [ ! -f /home/workspace/.init_done ]; then
      cp -rT /etc/skel /home/workspace 2>/dev/null || true
      touch /home/workspace/.init_done
    fi
  EOT

  env = {
    GIT_AUTHOR_NAME     = coalesce(data.coder_workspace_owner.me.full_name, data.coder_workspace_owner.me.name)
    GIT_AUTHOR_EMAIL    = data.coder_workspace_owner.me.email
    GIT_COMMITTER_NAME  = coalesce(data.coder_workspace_owner.me.full_name, data.coder_workspace_owner.me.name)
    GIT_COMMITTER_EMAIL = data.coder_workspace_owner.me.email
  }

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

resource "docker_volume" "home_volume" {
  name = "kiln-${data.coder_workspace.me.id}-home"
  # Protect the volume from being deleted due to changes in attributes.
  lifecycle {
    ignore_changes = all
  }
  labels {
    label = "kiln.owner"
    value = data.coder_workspace_owner.me.name
  }
  labels {
    label = "kiln.workspace_id"
    value = data.coder_workspace.me.id
  }
}

resource "docker_container" "workspace" {
  count    = data.coder_workspace.me.start_count
  image    = data.coder_parameter.image.value
  name     = "kiln-${data.coder_workspace_owner.me.name}-${lower(data.coder_workspace.me.name)}"
  hostname = data.coder_workspace.me.name
  # A control plane on the Docker host's loopback is reached from the container through host.docker.internal.
  entrypoint = ["sh", "-c", replace(coder_agent.main.init_script, "/localhost|127\\.0\\.0\\.1/", "host.docker.internal")]
  env = [
    "CODER_AGENT_TOKEN=${coder_agent.main.token}",
    "HOME=/home/workspace",
  ]
  host {
    host = "host.docker.internal"
    ip   = "host-gateway"
  }
  volumes {
    container_path = "/home/workspace"
    volume_name    = docker_volume.home_volume.name
    read_only      = false
  }
  labels {
    label = "kiln.owner"
    value = data.coder_workspace_owner.me.name
  }
  labels {
    label = "kiln.workspace_id"
    value = data.coder_workspace.me.id
  }
}

resource "coder_metadata" "container" {
  count       = data.coder_workspace.me.start_count
  resource_id = docker_container.workspace[0].id
  item {
    key   = "image"
    value = data.coder_parameter.image.value
  }
}
