import { z } from "@hono/zod-openapi";
import { AgentConfig } from "@kiln/workspace-daemon/agent-protocol";

export const ErrorBody = z.object({
  error: z.object({
    code: z.string().openapi({ example: "invalid_request" }),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
}).openapi("Error");

export const Role = z.enum(["owner", "admin", "member"]).openapi("Role");

export const User = z.object({
  id: z.uuid(),
  email: z.string(),
  username: z.string(),
  role: Role,
  suspended: z.boolean(),
  created_at: z.string(),
}).openapi("User");

const username = z.string().regex(/^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?$/, "1-32 lowercase letters, digits, '-' or '_'");
const password = z.string().min(8, "at least 8 characters").max(256);

export const BootstrapRequest = z.object({ email: z.email(), username, password }).openapi("BootstrapRequest");
export const LoginRequest = z.object({ login: z.string().min(1).describe("email or username"), password: z.string().min(1) }).openapi("LoginRequest");
export const SessionResponse = z.object({ token: z.string(), user: User }).openapi("Session");
export const CreateUserRequest = z.object({ email: z.email(), username, password, role: z.enum(["admin", "member"]).default("member") }).openapi("CreateUserRequest");
export const UpdateUserRequest = z.object({ role: z.enum(["admin", "member"]).optional(), suspended: z.boolean().optional() }).openapi("UpdateUserRequest");
export const CreateTokenRequest = z.object({ name: z.string().min(1).max(64), lifetime_seconds: z.number().int().positive().optional() }).openapi("CreateTokenRequest");
export const TokenResponse = z.object({ id: z.string(), token: z.string() }).openapi("ApiToken");

export const Template = z.object({
  id: z.uuid(),
  name: z.string(),
  display_name: z.string(),
  description: z.string(),
  kind: z.enum(["local", "terraform"]),
  active_version_id: z.uuid().nullable(),
  created_at: z.string(),
}).openapi("Template");

const TemplateParameterSchema = z.object({
  name: z.string(), display_name: z.string(), description: z.string(),
  type: z.enum(["string", "number", "bool", "list(string)"]), form_type: z.string(),
  mutable: z.boolean(), ephemeral: z.boolean(), default: z.string().nullable(), icon: z.string(),
  options: z.array(z.object({ name: z.string(), description: z.string(), value: z.string(), icon: z.string() })),
  validation: z.object({ min: z.number().nullable(), max: z.number().nullable(), monotonic: z.string(), regex: z.string(), error: z.string() }).nullable(),
  required: z.boolean(), order: z.number().int(),
}).openapi("TemplateParameter");

export const TemplateVersion = z.object({
  id: z.uuid(),
  template_id: z.uuid(),
  name: z.string(),
  message: z.string(),
  status: z.enum(["pending", "running", "succeeded", "failed", "canceled"]).describe("the import job's status"),
  active: z.boolean(),
  job_id: z.uuid().nullable(),
  error: z.string().nullable().describe("why the import failed: Terraform's diagnostics"),
  created_by: z.string().nullable(),
  created_at: z.string(),
  parameters: z.array(TemplateParameterSchema),
  agents: z.array(z.record(z.string(), z.unknown())).describe("coder_agent resources with their scripts, apps and metadata"),
  resources: z.array(z.record(z.string(), z.unknown())).describe("infrastructure resources with their coder_metadata"),
  variables: z.array(z.string()).describe("names of the Terraform variables given values at push"),
}).openapi("TemplateVersion");

export const PushTemplateVersionRequest = z.object({
  files: z.array(z.object({
    path: z.string().min(1).max(1024),
    mode: z.number().int().min(0).max(0o777).default(0o644),
    content: z.string().describe("base64"),
  })).min(1).max(1000),
  name: z.string().max(64).optional().describe("version name; v<N> when omitted"),
  message: z.string().max(4096).optional(),
  variables: z.record(z.string(), z.string()).optional().describe("values for the module's Terraform variables"),
  activate: z.boolean().optional().describe("make the version active once its import succeeds (default true)"),
  display_name: z.string().max(128).optional(),
  description: z.string().max(4096).optional(),
}).openapi("PushTemplateVersionRequest");

export const WorkspaceStatus = z.enum(["pending", "starting", "running", "stopping", "stopped", "failed", "canceling", "canceled", "deleting", "deleted"]).openapi("WorkspaceStatus");
export const JobStatus = z.enum(["pending", "running", "succeeded", "canceling", "canceled", "failed"]).openapi("JobStatus");
export const LifecycleState = z.enum(["created", "starting", "start_timeout", "start_error", "ready", "shutting_down", "shutdown_timeout", "shutdown_error", "off"]).openapi("AgentLifecycleState");

export const Workspace = z.object({
  id: z.uuid(),
  name: z.string(),
  owner_id: z.uuid(),
  owner_name: z.string(),
  template_id: z.uuid(),
  template_name: z.string(),
  status: WorkspaceStatus,
  latest_build: z.object({
    id: z.uuid(),
    build_number: z.number().int(),
    transition: z.enum(["start", "stop", "delete"]),
    job_id: z.uuid(),
    job_status: JobStatus,
    error: z.string().nullable(),
    created_at: z.string(),
    completed_at: z.string().nullable(),
  }).nullable(),
  agent: z.object({
    id: z.uuid(),
    lifecycle_state: LifecycleState,
    connected: z.boolean(),
    version: z.string().nullable(),
    directory: z.string().nullable(),
  }).nullable(),
  created_at: z.string(),
  updated_at: z.string(),
}).openapi("Workspace");

export const CreateWorkspaceRequest = z.object({
  name: z.string().min(1).describe("1-32 lowercase letters, digits and dashes"),
  template: z.string().min(1).describe("template name or id"),
  parameters: z.record(z.string(), z.string()).optional(),
}).openapi("CreateWorkspaceRequest");

export const BuildLog = z.object({
  id: z.number().int(),
  created_at: z.string(),
  level: z.enum(["debug", "info", "warn", "error"]),
  stage: z.string(),
  output: z.string(),
}).openapi("BuildLog");

export const AgentLog = z.object({
  id: z.number().int(),
  created_at: z.string(),
  source: z.string().describe("the script's display name, or 'agent'"),
  level: z.enum(["debug", "info", "warn", "error"]),
  output: z.string(),
}).openapi("AgentLog");

export const WorkspaceAgentInfo = z.object({
  workspace_id: z.uuid(),
  build_number: z.number().int().nullable().describe("the build the resources come from"),
  resources: z.array(z.record(z.string(), z.unknown())).describe("address, type, name, agents, hide, icon, daily_cost, metadata [{ key, value, sensitive }]"),
  agent: z.object({
    id: z.uuid(),
    name: z.string(),
    lifecycle_state: LifecycleState,
    connected: z.boolean(),
    version: z.string().nullable(),
    operating_system: z.string().nullable(),
    architecture: z.string().nullable(),
    directory: z.string().nullable(),
    started_at: z.string().nullable(),
    ready_at: z.string().nullable(),
    tailnet: z.object({ address: z.string(), port: z.number().int(), ssh_port: z.number().int().nullable().describe("SSH for the owner's devices on the tailnet"), joined_at: z.string().nullable() }).nullable().describe("where the agent serves its API on the tailnet; null on the relay only"),
    tailnet_error: z.string().nullable().describe("why the agent could not join the tailnet, as it last reported"),
    scripts: z.array(z.object({
      display_name: z.string(), run_on_start: z.boolean(), run_on_stop: z.boolean(), start_blocks_login: z.boolean(), timeout_seconds: z.number().int(), cron: z.string(),
    })),
    apps: z.array(z.record(z.string(), z.unknown())),
    metadata: z.array(z.object({ key: z.string(), display_name: z.string(), value: z.string().nullable(), error: z.string().nullable(), collected_at: z.string().nullable() })),
    script_runs: z.array(z.object({
      script: z.string(), stage: z.enum(["start", "stop", "cron"]), status: z.enum(["ok", "exit_failure", "timed_out", "start_failure"]),
      exit_code: z.number().int().nullable(), started_at: z.string(), ended_at: z.string(),
    })),
  }).nullable(),
}).openapi("WorkspaceAgentInfo");

export const ExecRequest = z.object({
  command: z.string().min(1).describe("run with sh -c in the workspace"),
  workdir: z.string().optional(),
  env: z.record(z.string(), z.string()).optional(),
  timeout_ms: z.number().int().positive().max(4 * 3600 * 1000).optional(),
}).openapi("ExecRequest");

export const AgentLifecycleRequest = z.object({
  state: LifecycleState,
  version: z.string().max(64).optional(),
  operating_system: z.string().max(32).optional(),
  architecture: z.string().max(32).optional(),
  directory: z.string().max(4096).optional(),
}).openapi("AgentLifecycleRequest");

export const AgentManifest = z.object({
  agent_id: z.uuid(),
  agent_name: z.string(),
  workspace_id: z.uuid(),
  workspace_name: z.string(),
  owner_name: z.string(),
  config: AgentConfig.nullable().describe("what the daemon runs; null until the build has recorded it"),
}).openapi("AgentManifest");

export const AgentTailnetJoin = z.object({
  login_server: z.string().describe("the coordination server's URL (tailscale up --login-server)"),
  auth_key: z.string().describe("single-use, ephemeral, tagged preauth key; expires in 10 minutes"),
  credential: z.string().describe("the control plane presents it on every request (x-kiln-tailnet-credential); refuse requests without it"),
  hostname: z.string(),
  ports: z.object({ first: z.number().int(), last: z.number().int() }).describe("serve the API on the first free port of this range"),
  ssh_ports: z.object({ first: z.number().int(), last: z.number().int() }).nullable().describe("serve SSH for the owner's devices on the first free port of this range; null: don't"),
  derp_over_http: z.boolean().describe("the DERP server has no TLS (set TS_DEBUG_USE_DERP_HTTP=1)"),
}).openapi("AgentTailnetJoin");

export const AgentTailnetReport = z.union([
  z.object({
    address: z.ipv4().describe("the daemon's tailnet IPv4 address"),
    port: z.number().int().describe("the port it serves its API on (from the range the join gave, 46100-46199)"),
    ssh_port: z.number().int().optional().describe("the port it serves SSH on for its owner's devices (from ssh_ports, 46200-46299)"),
  }),
  z.object({ error: z.string().min(1).max(4000).describe("why the daemon could not join; it stays on the relay") }),
]).openapi("AgentTailnetReport");

export const TailnetPing = z.object({
  transport: z.enum(["tailnet", "relay"]),
  path: z.enum(["direct", "derp", "relay"]).describe("direct: WireGuard peer to peer; derp: WireGuard relayed through DERP; relay: Kiln's WebSocket relay"),
  round_trip_ms: z.number().describe("an HTTP/2 PING to the daemon and back over the tunnel"),
  tailnet: z.object({
    address: z.string(), port: z.number().int(), endpoint: z.string().describe("where WireGuard packets go: ip:port, or DERP(region)"),
    wireguard_round_trip_ms: z.number().describe("a disco ping between the tailscale nodes"),
  }).nullable(),
  tailnet_error: z.string().nullable().describe("why the agent is not on the tailnet, as it last reported"),
}).openapi("TailnetPing");

export const TailnetDeviceKey = z.object({
  login_server: z.string(),
  auth_key: z.string().describe("single use; the device joins as your own tailnet user"),
  expires_at: z.string(),
  derp_over_http: z.boolean().describe("the DERP server has no TLS (set TS_DEBUG_USE_DERP_HTTP=1 for tailscaled)"),
  command: z.string().describe("the tailscale up command to run on the device"),
}).openapi("TailnetDeviceKey");

export const WorkspaceParam = z.object({ workspace: z.string().min(1).openapi({ param: { name: "workspace", in: "path" }, description: "workspace id, name (yours), or owner/name (admins)" }) });

export const errorResponses = {
  400: { description: "Bad input: the field and the reason are in error.details", content: { "application/json": { schema: ErrorBody } } },
  401: { description: "Not authenticated", content: { "application/json": { schema: ErrorBody } } },
  403: { description: "Not allowed", content: { "application/json": { schema: ErrorBody } } },
  404: { description: "Not found", content: { "application/json": { schema: ErrorBody } } },
  409: { description: "Conflicts with the current state", content: { "application/json": { schema: ErrorBody } } },
} as const;

export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

// ── Chats ─────────────────────────────────────────────────────────────────────

export const MessagePartSchema = z.object({ type: z.enum(["text", "reasoning", "tool-call", "tool-result", "file"]) }).passthrough().openapi("MessagePart");
export const UsageSchema = z.object({ inputTokens: z.number(), outputTokens: z.number(), cacheReadTokens: z.number(), cacheWriteTokens: z.number(), reasoningTokens: z.number() }).openapi("Usage");
export const ChatStatus = z.enum(["pending", "running", "waiting", "error", "requires_action"]).openapi("ChatStatus");
export const Chat = z.object({
  id: z.uuid(), owner_id: z.uuid(), workspace_id: z.uuid().nullable(), parent_chat_id: z.uuid().nullable(), root_chat_id: z.uuid().nullable(),
  title: z.string(), status: ChatStatus, model_id: z.uuid().nullable(), last_error: z.string().nullable(), archived: z.boolean(),
  created_at: z.string(), updated_at: z.string(),
}).openapi("Chat");
export const ChatMessage = z.object({
  id: z.number().int(), chat_id: z.uuid(), role: z.enum(["system", "user", "assistant", "tool"]), parts: z.array(MessagePartSchema),
  usage: UsageSchema.nullable(), compressed: z.boolean(), visibility: z.enum(["user", "model", "both"]), created_at: z.string(),
}).openapi("ChatMessage");
export const QueuedMessage = z.object({ id: z.number().int(), parts: z.array(MessagePartSchema), position: z.number().int(), created_at: z.string() }).openapi("QueuedMessage");
export const CreateChatRequest = z.object({
  prompt: z.string().min(1, "must not be empty").max(1_000_000),
  workspace: z.string().optional().describe("workspace id or name to work in"),
  model: z.string().optional().describe("model id or name; the default model when omitted"),
  title: z.string().max(200).optional(),
}).openapi("CreateChatRequest");
export const SendMessageRequest = z.object({
  content: z.string().min(1, "must not be empty").max(1_000_000),
  interrupt: z.boolean().optional().describe("stop the running turn and deliver this message next"),
}).openapi("SendMessageRequest");
export const ToolCallApproval = z.object({
  tool_call_id: z.string(), tool_name: z.string(), input: z.unknown(), status: z.string(), created_at: z.string(),
}).openapi("ToolCallApproval");
