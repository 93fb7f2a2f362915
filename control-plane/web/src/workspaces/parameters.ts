/** A template parameter as the provisioner extracts it from `coder_parameter` (provisioner/src/terraform/parameters.ts). */
export interface TemplateParameter {
  name: string;
  display_name?: string;
  description?: string;
  type?: "string" | "number" | "bool" | "list(string)";
  form_type?: string;
  mutable?: boolean;
  /** null when the parameter has no default, which makes it required. */
  default?: string | null;
  options?: { name: string; description?: string; value: string }[];
  validation?: { min: number | null; max: number | null; monotonic?: string; regex?: string; error?: string } | null;
  required?: boolean;
  order?: number;
}

/** Reads the parameters of a template version response (`templates.getVersion`), in their declared order. */
export function templateParameters(version: unknown): TemplateParameter[] {
  const list = (version as { parameters?: unknown } | null)?.parameters;
  if (!Array.isArray(list)) return [];
  return (list as TemplateParameter[]).filter((parameter) => typeof parameter?.name === "string")
    .sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
}

function validationMessage(parameter: TemplateParameter, fallback: string): string {
  const custom = parameter.validation?.error;
  if (!custom) return fallback;
  return custom.replace(/\{min\}/g, String(parameter.validation?.min ?? "")).replace(/\{max\}/g, String(parameter.validation?.max ?? "")).replace(/\{value\}/g, "");
}

/** What is wrong with a value for a parameter, checked the way the provisioner checks it, or null. */
export function checkParameter(parameter: TemplateParameter, value: string): string | null {
  const required = parameter.required ?? (parameter.default === null || parameter.default === undefined);
  if (value === "") return required ? "required" : null;
  const type = parameter.type ?? "string";
  if (parameter.options && parameter.options.length > 0 && type !== "list(string)" && !parameter.options.some((option) => option.value === value)) {
    return `must be one of: ${parameter.options.map((option) => option.value).join(", ")}`;
  }
  if (type === "number") {
    const number = Number(value);
    if (value.trim() === "" || !Number.isFinite(number)) return "must be a number";
    const { min, max } = parameter.validation ?? { min: null, max: null };
    if (min !== null && min !== undefined && number < min) return validationMessage(parameter, `must be at least ${min}`);
    if (max !== null && max !== undefined && number > max) return validationMessage(parameter, `must be at most ${max}`);
  }
  if (type === "bool" && value !== "true" && value !== "false") return "must be true or false";
  if (type === "list(string)") {
    try {
      const parsed: unknown = JSON.parse(value);
      if (!Array.isArray(parsed) || parsed.some((item) => typeof item !== "string")) return "must be a JSON list of strings";
    } catch {
      return "must be a JSON list of strings";
    }
  }
  if (type === "string" && parameter.validation?.regex) {
    try {
      if (!new RegExp(parameter.validation.regex).test(value)) return validationMessage(parameter, `must match ${parameter.validation.regex}`);
    } catch {
      // A pattern JavaScript cannot read (Go RE2 syntax): leave it to the server.
    }
  }
  return null;
}

/** The values a form starts with: every parameter's default. */
export function initialValues(parameters: TemplateParameter[]): Record<string, string> {
  return Object.fromEntries(parameters.map((parameter) => [parameter.name, parameter.default ?? (parameter.type === "bool" ? "false" : "")]));
}
