import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Navigate, NavLink, Route, Routes } from "react-router";
import { api, errorMessage, unwrap, type Model, type Provider, type Schemas } from "../api/client.ts";
import { useMe } from "../auth/session.ts";
import { Empty, ErrorNote, Field, formatTokens, Loading, StatusBadge } from "../ui/ui.tsx";

const PROVIDER_TYPES = ["anthropic", "openai", "azure-openai", "google", "bedrock", "openai-compatible"] as const;

export default function AdminPage() {
  return (
    <main className="page" id="main">
      <h1>Admin</h1>
      <nav className="tabs" aria-label="Admin sections">
        <NavLink to="/admin/providers">Providers</NavLink>
        <NavLink to="/admin/models">Models</NavLink>
        <NavLink to="/admin/system-prompt">System prompt</NavLink>
        <NavLink to="/admin/tool-policy">Tool policy</NavLink>
        <NavLink to="/admin/users">Users</NavLink>
      </nav>
      <Routes>
        <Route index element={<Navigate to="/admin/providers" replace />} />
        <Route path="providers" element={<Providers />} />
        <Route path="models" element={<Models />} />
        <Route path="system-prompt" element={<SystemPrompt />} />
        <Route path="tool-policy" element={<ToolPolicy />} />
        <Route path="users" element={<Users />} />
      </Routes>
    </main>
  );
}

function Saved({ show }: { show: boolean }) {
  return show ? <span className="saved" role="status">Saved</span> : null;
}

function Providers() {
  const queryClient = useQueryClient();
  const providers = useQuery({ queryKey: ["admin", "providers"], queryFn: async () => unwrap(await api.GET("/api/v1/admin/providers")).providers });
  const [type, setType] = useState<(typeof PROVIDER_TYPES)[number]>("anthropic");
  const create = useMutation({
    mutationFn: async (body: Schemas["CreateLlmProviderRequest"]) => unwrap(await api.POST("/api/v1/admin/providers", { body })),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ["admin"] }),
  });
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const text = (name: string) => String(form.get(name) ?? "").trim() || undefined;
    const settings: Record<string, string> = {};
    for (const name of ["api_version", "deployment", "region", "access_key_id"]) if (text(name)) settings[name] = text(name)!;
    create.mutate({ name: text("name") ?? "", type, base_url: text("base_url"), api_key: text("api_key"), settings: Object.keys(settings).length ? settings : undefined }, {
      onSuccess: () => (event.target as HTMLFormElement).reset(),
    });
  };
  return (
    <section aria-labelledby="providers-title">
      <h2 id="providers-title">LLM providers</h2>
      <p className="muted">Keys are write-only: they are sealed at rest and never shown again.</p>
      {providers.isPending ? <Loading /> : providers.isError ? <ErrorNote error={providers.error} /> : providers.data.length === 0 ? <Empty>No providers yet.</Empty> : (
        <ul className="cards">{providers.data.map((provider) => <ProviderRow key={provider.id} provider={provider} />)}</ul>
      )}
      <form className="card" onSubmit={submit} aria-label="Add a provider">
        <h3>Add a provider</h3>
        <div className="grid-2">
          <Field label="Name" name="name" required />
          <div className="field">
            <label htmlFor="provider-type">Type</label>
            <select id="provider-type" value={type} onChange={(event) => setType(event.target.value as typeof type)}>
              {PROVIDER_TYPES.map((name) => <option key={name} value={name}>{name}</option>)}
            </select>
          </div>
          <Field label="Base URL" name="base_url" type="url" placeholder="the provider's default" required={type === "azure-openai" || type === "openai-compatible"} />
          <Field label={type === "bedrock" ? "API key or AWS secret access key" : "API key"} name="api_key" type="password" autoComplete="off" />
          {type === "azure-openai" && <><Field label="API version" name="api_version" required /><Field label="Deployment" name="deployment" /></>}
          {type === "bedrock" && <><Field label="Region" name="region" required placeholder="us-east-1" /><Field label="AWS access key id" name="access_key_id" /></>}
        </div>
        {create.isError && <p className="error" role="alert">{errorMessage(create.error)}</p>}
        <button type="submit" className="primary" disabled={create.isPending}>Add provider</button>
      </form>
    </section>
  );
}

function ProviderRow({ provider }: { provider: Provider }) {
  const queryClient = useQueryClient();
  const [key, setKey] = useState("");
  const update = useMutation({
    mutationFn: async (body: Schemas["UpdateLlmProviderRequest"]) => unwrap(await api.PATCH("/api/v1/admin/providers/{id}", { params: { path: { id: provider.id } }, body })),
    onSuccess: () => {
      setKey("");
      void queryClient.invalidateQueries({ queryKey: ["admin"] });
    },
  });
  const remove = useMutation({
    mutationFn: async () => unwrap(await api.DELETE("/api/v1/admin/providers/{id}", { params: { path: { id: provider.id } } })),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ["admin"] }),
  });
  return (
    <li className="card" data-provider={provider.name}>
      <div className="card-head">
        <strong>{provider.name}</strong> <span className="muted">{provider.type}</span>
        <StatusBadge status={provider.enabled ? "ready" : "stopped"} label={provider.enabled ? "enabled" : "disabled"} />
        <span className="muted small">{provider.has_api_key ? "key stored" : "no key"}</span>
      </div>
      {provider.base_url && <div className="small"><code>{provider.base_url}</code></div>}
      <form className="inline-form" onSubmit={(event) => {
        event.preventDefault();
        if (key) update.mutate({ api_key: key });
      }}>
        <label className="visually-hidden" htmlFor={`key-${provider.id}`}>New key for {provider.name}</label>
        <input id={`key-${provider.id}`} type="password" autoComplete="off" placeholder="Replace the key" value={key} onChange={(event) => setKey(event.target.value)} />
        <button type="submit" className="small" disabled={!key || update.isPending}>Set key</button>
        <button type="button" className="small" onClick={() => update.mutate({ enabled: !provider.enabled })}>{provider.enabled ? "Disable" : "Enable"}</button>
        <button type="button" className="small danger" onClick={() => window.confirm(`Delete ${provider.name} and its models?`) && remove.mutate()}>Delete</button>
      </form>
      {(update.isError || remove.isError) && <p className="error" role="alert">{errorMessage(update.error ?? remove.error)}</p>}
    </li>
  );
}

function Models() {
  const queryClient = useQueryClient();
  const models = useQuery({ queryKey: ["admin", "models"], queryFn: async () => unwrap(await api.GET("/api/v1/admin/models")).models });
  const providers = useQuery({ queryKey: ["admin", "providers"], queryFn: async () => unwrap(await api.GET("/api/v1/admin/providers")).providers });
  const create = useMutation({
    mutationFn: async (body: Schemas["CreateLlmModelRequest"]) => unwrap(await api.POST("/api/v1/admin/models", { body })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["admin"] });
      void queryClient.invalidateQueries({ queryKey: ["models"] });
    },
  });
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const number = (name: string) => (form.get(name) ? Number(form.get(name)) : undefined);
    create.mutate({
      provider_id: String(form.get("provider_id")), model: String(form.get("model")).trim(), display_name: String(form.get("display_name") ?? "").trim() || undefined,
      context_window: number("context_window"), compaction_threshold: number("compaction_threshold"), is_default: form.get("is_default") === "on",
    }, { onSuccess: () => (event.target as HTMLFormElement).reset() });
  };
  return (
    <section aria-labelledby="models-title">
      <h2 id="models-title">Models</h2>
      {models.isPending ? <Loading /> : models.isError ? <ErrorNote error={models.error} /> : models.data.length === 0 ? <Empty>No models yet.</Empty> : (
        <div className="table-wrap">
          <table className="table">
            <thead><tr><th scope="col">Model</th><th scope="col">Provider</th><th scope="col">Enabled</th><th scope="col">Context window</th><th scope="col">Compact at</th><th scope="col">Default</th></tr></thead>
            <tbody>{models.data.map((model) => <ModelRow key={model.id} model={model} />)}</tbody>
          </table>
        </div>
      )}
      <form className="card" onSubmit={submit} aria-label="Add a model">
        <h3>Add a model</h3>
        <div className="grid-2">
          <div className="field">
            <label htmlFor="model-provider">Provider</label>
            <select id="model-provider" name="provider_id" required>
              {providers.data?.map((provider) => <option key={provider.id} value={provider.id}>{provider.name}</option>)}
            </select>
          </div>
          <Field label="Provider's model id" name="model" required placeholder="claude-sonnet-4-5" />
          <Field label="Display name" name="display_name" />
          <Field label="Context window (tokens)" name="context_window" type="number" min={1024} />
          <Field label="Compaction threshold (%)" name="compaction_threshold" type="number" min={1} max={100} hint="100 disables compaction" />
          <div className="field checkbox"><input id="model-default" name="is_default" type="checkbox" /><label htmlFor="model-default">Default model</label></div>
        </div>
        {create.isError && <p className="error" role="alert">{errorMessage(create.error)}</p>}
        <button type="submit" className="primary" disabled={create.isPending || !providers.data?.length}>Add model</button>
      </form>
    </section>
  );
}

function ModelRow({ model }: { model: Model }) {
  const queryClient = useQueryClient();
  const [contextWindow, setContextWindow] = useState(String(model.context_window));
  const [threshold, setThreshold] = useState(String(model.compaction_threshold));
  const update = useMutation({
    mutationFn: async (body: Schemas["UpdateLlmModelRequest"]) => unwrap(await api.PATCH("/api/v1/admin/models/{id}", { params: { path: { id: model.id } }, body })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["admin", "models"] });
      void queryClient.invalidateQueries({ queryKey: ["models"] });
    },
  });
  const label = model.display_name || model.model;
  const saveNumbers = () => {
    const body: Schemas["UpdateLlmModelRequest"] = {};
    if (Number(contextWindow) !== model.context_window) body.context_window = Number(contextWindow);
    if (Number(threshold) !== model.compaction_threshold) body.compaction_threshold = Number(threshold);
    if (Object.keys(body).length) update.mutate(body);
  };
  return (
    <tr data-model={model.model}>
      <td>{label}{label !== model.model && <div className="muted small">{model.model}</div>}{update.isError && <div className="error small" role="alert">{errorMessage(update.error)}</div>}</td>
      <td>{model.provider_name}</td>
      <td><input type="checkbox" aria-label={`${label} enabled`} checked={model.enabled} onChange={(event) => update.mutate({ enabled: event.target.checked })} /></td>
      <td><input className="number" type="number" min={1024} aria-label={`${label} context window`} value={contextWindow} onChange={(event) => setContextWindow(event.target.value)} onBlur={saveNumbers} /> <span className="muted small">{formatTokens(model.context_window)}</span></td>
      <td><input className="number" type="number" min={1} max={100} aria-label={`${label} compaction threshold percent`} value={threshold} onChange={(event) => setThreshold(event.target.value)} onBlur={saveNumbers} />%</td>
      <td>{model.is_default ? <StatusBadge status="ready" label="default" /> : <button type="button" className="small" onClick={() => update.mutate({ is_default: true })}>Make default</button>}</td>
    </tr>
  );
}

function SystemPrompt() {
  const queryClient = useQueryClient();
  const prompt = useQuery({ queryKey: ["admin", "system-prompt"], queryFn: async () => unwrap(await api.GET("/api/v1/admin/system-prompt")) });
  const [text, setText] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: async (value: string) => unwrap(await api.PUT("/api/v1/admin/system-prompt", { body: { system_prompt: value } })),
    onSuccess: (data) => {
      queryClient.setQueryData(["admin", "system-prompt"], data);
      setText(null);
    },
  });
  if (prompt.isPending) return <Loading />;
  if (prompt.isError) return <ErrorNote error={prompt.error} />;
  const value = text ?? prompt.data.system_prompt;
  return (
    <section aria-labelledby="prompt-title">
      <h2 id="prompt-title">System prompt</h2>
      <p className="muted">Every new turn starts with this prompt{prompt.data.is_default ? " (the built-in one; saving an empty prompt restores it)" : ""}.</p>
      <form onSubmit={(event) => {
        event.preventDefault();
        save.mutate(value);
      }}>
        <label htmlFor="system-prompt" className="visually-hidden">System prompt</label>
        <textarea id="system-prompt" rows={14} value={value} onChange={(event) => setText(event.target.value)} className="mono" />
        {save.isError && <p className="error" role="alert">{errorMessage(save.error)}</p>}
        <div className="row">
          <button type="submit" className="primary" disabled={save.isPending || text === null}>Save system prompt</button>
          <Saved show={save.isSuccess && text === null} />
        </div>
      </form>
    </section>
  );
}

type Decision = "allow" | "ask" | "deny";

function ToolPolicy() {
  const queryClient = useQueryClient();
  const policy = useQuery({ queryKey: ["admin", "tool-policy"], queryFn: async () => unwrap(await api.GET("/api/v1/admin/tool-policy")) });
  const [draft, setDraft] = useState<Record<string, Decision> | null>(null);
  useEffect(() => setDraft(null), [policy.data]);
  const save = useMutation({
    mutationFn: async (value: Record<string, Decision>) => unwrap(await api.PUT("/api/v1/admin/tool-policy", { body: { policy: value } })),
    onSuccess: (data) => queryClient.setQueryData(["admin", "tool-policy"], data),
  });
  if (policy.isPending) return <Loading />;
  if (policy.isError) return <ErrorNote error={policy.error} />;
  const current = draft ?? (policy.data.policy as Record<string, Decision>);
  const names = [...new Set(["*", ...policy.data.tools, ...Object.keys(current)])];
  const set = (name: string, decision: Decision | "") => {
    const next = { ...current };
    if (decision === "") delete next[name];
    else next[name] = decision;
    setDraft(next);
  };
  return (
    <section aria-labelledby="policy-title">
      <h2 id="policy-title">Tool approval policy</h2>
      <p className="muted">Allow runs a tool at once, ask waits for the chat owner's approval, deny refuses it. "*" covers every tool not listed; tools not covered are allowed.</p>
      <form onSubmit={(event) => {
        event.preventDefault();
        save.mutate(current);
      }}>
        <div className="table-wrap">
          <table className="table">
            <thead><tr><th scope="col">Tool</th><th scope="col">Decision</th></tr></thead>
            <tbody>
              {names.map((name) => (
                <tr key={name} data-tool={name}>
                  <th scope="row"><code>{name === "*" ? "* (every other tool)" : name}</code></th>
                  <td>
                    <select aria-label={`Policy for ${name}`} value={current[name] ?? ""} onChange={(event) => set(name, event.target.value as Decision | "")}>
                      <option value="">{name === "*" ? "not set (allow)" : "default"}</option>
                      <option value="allow">allow</option>
                      <option value="ask">ask</option>
                      <option value="deny">deny</option>
                    </select>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {save.isError && <p className="error" role="alert">{errorMessage(save.error)}</p>}
        <div className="row">
          <button type="submit" className="primary" disabled={save.isPending || draft === null}>Save policy</button>
          <Saved show={save.isSuccess && draft === null} />
        </div>
      </form>
    </section>
  );
}

function Users() {
  const queryClient = useQueryClient();
  const me = useMe();
  const users = useQuery({ queryKey: ["admin", "users"], queryFn: async () => unwrap(await api.GET("/api/v1/users")).users });
  const create = useMutation({
    mutationFn: async (body: Schemas["CreateUserRequest"]) => unwrap(await api.POST("/api/v1/users", { body })),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ["admin", "users"] }),
  });
  const update = useMutation({
    mutationFn: async ({ id, ...body }: { id: string } & Schemas["UpdateUserRequest"]) => unwrap(await api.PATCH("/api/v1/users/{id}", { params: { path: { id } }, body })),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ["admin", "users"] }),
  });
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    create.mutate({
      email: String(form.get("email")), username: String(form.get("username")), password: String(form.get("password")), role: form.get("role") === "admin" ? "admin" : "member",
    }, { onSuccess: () => (event.target as HTMLFormElement).reset() });
  };
  return (
    <section aria-labelledby="users-title">
      <h2 id="users-title">Users and roles</h2>
      {users.isPending ? <Loading /> : users.isError ? <ErrorNote error={users.error} /> : (
        <div className="table-wrap">
          <table className="table">
            <thead><tr><th scope="col">User</th><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Access</th></tr></thead>
            <tbody>
              {users.data.map((user) => (
                <tr key={user.id} data-user={user.username}>
                  <td>{user.username}</td>
                  <td>{user.email}</td>
                  <td>{user.role === "owner" || user.id === me.data?.id ? user.role : (
                    <select aria-label={`Role of ${user.username}`} value={user.role} onChange={(event) => update.mutate({ id: user.id, role: event.target.value as "admin" | "member" })}>
                      <option value="member">member</option>
                      <option value="admin">admin</option>
                    </select>
                  )}</td>
                  <td>{user.role === "owner" || user.id === me.data?.id ? <span className="muted">{user.suspended ? "suspended" : "active"}</span> : (
                    <button type="button" className="small" onClick={() => update.mutate({ id: user.id, suspended: !user.suspended })}>{user.suspended ? "Reinstate" : "Suspend"}</button>
                  )}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {update.isError && <p className="error" role="alert">{errorMessage(update.error)}</p>}
      <form className="card" onSubmit={submit} aria-label="Add a user">
        <h3>Add a user</h3>
        <div className="grid-2">
          <Field label="Email" name="email" type="email" required />
          <Field label="Username" name="username" required />
          <Field label="Initial password" name="password" type="password" autoComplete="new-password" required minLength={8} />
          <div className="field">
            <label htmlFor="user-role">Role</label>
            <select id="user-role" name="role" defaultValue="member"><option value="member">member</option><option value="admin">admin</option></select>
          </div>
        </div>
        {create.isError && <p className="error" role="alert">{errorMessage(create.error)}</p>}
        <button type="submit" className="primary" disabled={create.isPending}>Add user</button>
      </form>
    </section>
  );
}
