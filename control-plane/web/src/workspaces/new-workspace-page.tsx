import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useState, type FormEvent } from "react";
import { useNavigate } from "react-router";
import { api, ApiError, errorMessage, fieldErrors, unwrap } from "../api/client.ts";
import { ErrorNote, Loading, PageHeader } from "../ui/ui.tsx";
import { checkParameter, initialValues, templateParameters, type TemplateParameter } from "./parameters.ts";

/** Problems the server reported per parameter (`parameters.<name>`), however it shaped them. */
function parameterProblems(error: unknown): Record<string, string> {
  const problems: Record<string, string> = {};
  for (const [field, reason] of Object.entries(fieldErrors(error))) problems[field.replace(/^parameters\./, "")] = reason;
  if (error instanceof ApiError) {
    const list = error.details?.problems;
    if (Array.isArray(list)) for (const problem of list as { field?: string; reason?: string }[]) if (problem.field && problem.reason) problems[problem.field.replace(/^parameters\./, "")] = problem.reason;
  }
  return problems;
}

function ParameterField({ parameter, value, error, onChange }: { parameter: TemplateParameter; value: string; error?: string; onChange: (value: string) => void }) {
  const id = useId();
  const label = parameter.display_name || parameter.name;
  const required = parameter.required ?? (parameter.default === null || parameter.default === undefined);
  const describedBy = [parameter.description ? `${id}-hint` : null, error ? `${id}-error` : null].filter(Boolean).join(" ") || undefined;
  const common = { id, "aria-invalid": error ? true : undefined, "aria-describedby": describedBy, required, name: `parameter-${parameter.name}` };
  let control;
  if (parameter.options && parameter.options.length > 0 && parameter.type !== "list(string)") {
    control = (
      <select {...common} value={value} onChange={(event) => onChange(event.target.value)}>
        {!required || value === "" ? <option value="">{required ? "Choose…" : "(default)"}</option> : null}
        {parameter.options.map((option) => <option key={option.value} value={option.value}>{option.name || option.value}</option>)}
      </select>
    );
  } else if (parameter.type === "bool") {
    return (
      <div className="field checkbox">
        <input type="checkbox" {...common} required={false} checked={value === "true"} onChange={(event) => onChange(event.target.checked ? "true" : "false")} />
        <label htmlFor={id}>{label}</label>
        {parameter.description && <small id={`${id}-hint`} className="muted">{parameter.description}</small>}
        {error && <small id={`${id}-error`} className="error">{error}</small>}
      </div>
    );
  } else if (parameter.type === "number") {
    control = <input type="number" inputMode="numeric" {...common} min={parameter.validation?.min ?? undefined} max={parameter.validation?.max ?? undefined} value={value} onChange={(event) => onChange(event.target.value)} />;
  } else if (parameter.form_type === "textarea" || parameter.type === "list(string)") {
    control = <textarea {...common} rows={3} value={value} onChange={(event) => onChange(event.target.value)} />;
  } else {
    control = <input type="text" {...common} value={value} onChange={(event) => onChange(event.target.value)} />;
  }
  return (
    <div className="field">
      <label htmlFor={id}>{label}{required && <span aria-hidden="true"> *</span>}{parameter.mutable === false && <span className="muted small"> (cannot change later)</span>}</label>
      {control}
      {parameter.description && <small id={`${id}-hint`} className="muted">{parameter.description}</small>}
      {error && <small id={`${id}-error`} className="error">{error}</small>}
    </div>
  );
}

export default function NewWorkspacePage() {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const templates = useQuery({ queryKey: ["templates"], queryFn: async () => unwrap(await api.GET("/api/v1/templates", { params: { query: {} } })).templates });
  const [templateName, setTemplateName] = useState("");
  useEffect(() => {
    if (!templateName && templates.data?.[0]) setTemplateName(templates.data[0].name);
  }, [templates.data, templateName]);
  const template = useQuery({
    queryKey: ["template", templateName],
    queryFn: async () => unwrap(await api.GET("/api/v1/templates/{template}", { params: { path: { template: templateName } } })),
    enabled: templateName !== "",
  });
  // Parameters belong to the template's active version (what its import found in coder_parameter blocks).
  const activeVersion = template.data?.active_version_id ?? null;
  const version = useQuery({
    queryKey: ["template-version", template.data?.id, activeVersion],
    queryFn: async () => unwrap(await api.GET("/api/v1/templates/{template}/versions/{version}", { params: { path: { template: template.data!.id, version: activeVersion! } } })),
    enabled: activeVersion !== null && template.data !== undefined,
  });
  const parameters = templateParameters(version.data);
  const [values, setValues] = useState<Record<string, string>>({});
  const [touched, setTouched] = useState(false);
  useEffect(() => setValues(initialValues(templateParameters(version.data))), [version.data]);
  const [name, setName] = useState("");
  const create = useMutation({
    mutationFn: async (input: { name: string; template: string; parameters: Record<string, string> }) => unwrap(await api.POST("/api/v1/workspaces", { body: input })),
    onSuccess: (workspace) => {
      void queryClient.invalidateQueries({ queryKey: ["workspaces"] });
      void navigate(`/workspaces/${workspace.id}`);
    },
  });
  const localErrors: Record<string, string> = {};
  for (const parameter of parameters) {
    const problem = checkParameter(parameter, values[parameter.name] ?? "");
    if (problem) localErrors[parameter.name] = problem;
  }
  const serverErrors = parameterProblems(create.error);
  const nameError = !/^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/.test(name) && (touched || name) ? "1-32 lowercase letters, digits and dashes" : serverErrors.name;
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    setTouched(true);
    if (nameError || Object.keys(localErrors).length > 0 || !templateName) return;
    const given = Object.fromEntries(parameters.filter((parameter) => (values[parameter.name] ?? "") !== "").map((parameter) => [parameter.name, values[parameter.name]!]));
    create.mutate({ name, template: templateName, parameters: given });
  };
  return (
    <main className="page narrow" id="main">
      <PageHeader title="New workspace" />
      {templates.isPending ? <Loading what="Loading templates" /> : templates.isError ? <ErrorNote error={templates.error} /> : (
        <form onSubmit={submit} noValidate aria-label="Create a workspace">
          <div className="field">
            <label htmlFor="workspace-template">Template</label>
            <select id="workspace-template" value={templateName} onChange={(event) => setTemplateName(event.target.value)}>
              {templates.data.map((item) => <option key={item.id} value={item.name}>{item.display_name || item.name}</option>)}
            </select>
            {template.data?.description && <small className="muted">{template.data.description}</small>}
          </div>
          <div className="field">
            <label htmlFor="workspace-name">Name</label>
            <input id="workspace-name" value={name} onChange={(event) => setName(event.target.value.toLowerCase())} autoComplete="off" spellCheck={false} required
              aria-invalid={nameError ? true : undefined} aria-describedby="workspace-name-hint" />
            <small id="workspace-name-hint" className={nameError ? "error" : "muted"}>{nameError ?? "1-32 lowercase letters, digits and dashes"}</small>
          </div>
          {(template.isPending || version.isLoading) && templateName ? <Loading what="Loading parameters" /> : parameters.length > 0 && (
            <fieldset>
              <legend>Parameters</legend>
              {parameters.map((parameter) => (
                <ParameterField key={parameter.name} parameter={parameter} value={values[parameter.name] ?? ""}
                  error={(touched ? localErrors[parameter.name] : undefined) ?? serverErrors[parameter.name]}
                  onChange={(value) => setValues((current) => ({ ...current, [parameter.name]: value }))} />
              ))}
            </fieldset>
          )}
          {create.isError && <p className="error" role="alert">{errorMessage(create.error)}</p>}
          <button type="submit" className="primary" disabled={create.isPending}>{create.isPending ? "Creating…" : "Create workspace"}</button>
        </form>
      )}
    </main>
  );
}
