# A Kiln workspace that is a directory plus a kiln-daemon process on the Kiln server's own machine.
# No isolation: for trying Kiln, for development, and for Kiln's tests. It is written as any Coder
# template is; only `terraform_data` + `local-exec` (built into Terraform) stand in for a machine.
terraform {
  required_providers {
    coder = {
      source  = "coder/coder"
      version = ">= 2.0.0"
    }
  }
}

variable "workspaces_directory" {
  type        = string
  description = "Where workspace home directories are created on the Kiln server's machine (set with kiln templates push --variable)."
  default     = "/tmp/kiln-local-workspaces"
}

data "coder_provisioner" "me" {}
data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

data "coder_parameter" "greeting" {
  name         = "greeting"
  display_name = "Greeting"
  description  = "Written to ~/greeting.txt by the startup script."
  type         = "string"
  default      = "hello"
  mutable      = true
  validation {
    regex = "^[a-z ]+$"
    error = "Use lowercase letters and spaces only"
  }
}

data "coder_parameter" "history_lines" {
  name         = "history_lines"
  display_name = "Shell history size"
  description  = "HISTSIZE for shells in the workspace."
  type         = "number"
  default      = "1000"
  mutable      = false
  validation {
    min = 10
    max = 100000
  }
}

locals {
  home = "${var.workspaces_directory}/${data.coder_workspace.me.id}"
}

resource "coder_agent" "main" {
  arch                    = data.coder_provisioner.me.arch
  os                      = data.coder_provisioner.me.os
  dir                     = local.home
  startup_script_behavior = "blocking"
  startup_script          = <<-EOT
    echo "${data.coder_parameter.greeting.value}, ${data.coder_workspace_owner.me.name}" > greeting.txt
    echo "startup script ran for ${data.coder_workspace.me.name}"
  EOT
  shutdown_script         = "echo \"stopped at $(date -u +%FT%TZ)\" >> shutdown.log"
  env = {
    HISTSIZE        = data.coder_parameter.history_lines.value
    KILN_TEMPLATE   = "local"
    WORKSPACE_OWNER = data.coder_workspace_owner.me.name
  }

  metadata {
    key          = "load"
    display_name = "Load average"
    script       = "cut -d' ' -f1 /proc/loadavg"
    interval     = 5
    timeout      = 1
  }
  metadata {
    key          = "home_files"
    display_name = "Files in home"
    script       = "ls -A | wc -l"
    interval     = 10
    timeout      = 2
  }
}

resource "coder_script" "motd" {
  agent_id     = coder_agent.main.id
  display_name = "motd"
  script       = "echo \"Welcome to ${data.coder_workspace.me.name} (Kiln local template)\" > .motd && echo wrote .motd"
  run_on_start = true
}

resource "coder_app" "daemon_log" {
  agent_id     = coder_agent.main.id
  slug         = "daemon-log"
  display_name = "Agent log"
  command      = "tail -f .kiln-daemon.log"
}

# The home directory outlives stop/start and goes away with the workspace.
resource "terraform_data" "home" {
  input = local.home

  provisioner "local-exec" {
    command     = "mkdir -p \"$HOME_DIRECTORY\""
    environment = { HOME_DIRECTORY = self.input }
  }
  provisioner "local-exec" {
    when        = destroy
    command     = "rm -rf \"$HOME_DIRECTORY\""
    environment = { HOME_DIRECTORY = self.input }
  }
}

resource "coder_metadata" "home" {
  resource_id = terraform_data.home.id
  item {
    key   = "directory"
    value = local.home
  }
}

# While the workspace runs: the agent, a kiln-daemon process started by the init script in its own session.
resource "terraform_data" "agent" {
  count      = data.coder_workspace.me.start_count
  depends_on = [terraform_data.home]
  # Every start build issues a new agent token; a new token means a new process.
  triggers_replace = [coder_agent.main.token]
  input = {
    pid_file = "${local.home}/.kiln-daemon.pid"
  }

  provisioner "local-exec" {
    command = <<-EOT
      cd "$HOME"
      setsid nohup /bin/sh -c "$INIT_SCRIPT" > "$HOME/.kiln-daemon.log" 2>&1 < /dev/null &
      echo $! > "$PID_FILE"
      echo "started the agent (pid $!)"
    EOT
    environment = {
      HOME              = local.home
      PID_FILE          = "${local.home}/.kiln-daemon.pid"
      INIT_SCRIPT       = coder_agent.main.init_script
      CODER_AGENT_TOKEN = coder_agent.main.token
      KILN_WORKDIR      = local.home
      KILN_CACHE_DIR    = "${var.workspaces_directory}/.cache"
    }
  }

  # Stop: SIGTERM lets the agent run its shutdown scripts; it gets 30 s before SIGKILL.
  provisioner "local-exec" {
    when        = destroy
    command     = <<-EOT
      pid="$(cat "$PID_FILE" 2>/dev/null)" || exit 0
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || { rm -f "$PID_FILE"; exit 0; }
      waited=0
      while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
      kill -KILL -- "-$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      echo "stopped the agent (pid $pid)"
    EOT
    environment = { PID_FILE = self.input.pid_file }
  }
}
