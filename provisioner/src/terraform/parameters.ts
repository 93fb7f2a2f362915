import { z } from "zod";

/**
 * A template parameter (data "coder_parameter") as found at import. The validation rules below mirror
 * the Coder provider's (provider/parameter.go), so a bad value is refused before Terraform runs.
 */
export const TemplateParameter = z.object({
  name: z.string(),
  display_name: z.string().default(""),
  description: z.string().default(""),
  type: z.enum(["string", "number", "bool", "list(string)"]).default("string"),
  form_type: z.string().default(""),
  mutable: z.boolean().default(false),
  ephemeral: z.boolean().default(false),
  /** null when the parameter has no default, which makes it required. */
  default: z.string().nullable().default(null),
  icon: z.string().default(""),
  options: z.array(z.object({ name: z.string(), description: z.string().default(""), value: z.string(), icon: z.string().default("") })).default([]),
  validation: z.object({
    min: z.number().int().nullable(),
    max: z.number().int().nullable(),
    monotonic: z.enum(["", "increasing", "decreasing"]).default(""),
    regex: z.string().default(""),
    error: z.string().default(""),
  }).nullable().default(null),
  required: z.boolean(),
  order: z.number().int().default(0),
});
export type TemplateParameter = z.infer<typeof TemplateParameter>;

export interface ParameterProblem {
  /** `parameters.<name>` */
  field: string;
  reason: string;
}

export interface ResolveOptions {
  /** Values of the workspace's previous build: kept unless changed, and checked for mutability and monotonicity. */
  previous?: Record<string, string>;
}

/**
 * Resolves the values a build runs with: given values, else the previous build's, else defaults.
 * Returns every problem at once; an empty list means `values` is complete and valid.
 */
export function resolveParameters(parameters: TemplateParameter[], given: Record<string, string>, options: ResolveOptions = {}): { values: Record<string, string>; problems: ParameterProblem[] } {
  const problems: ParameterProblem[] = [];
  const values: Record<string, string> = {};
  const known = new Set(parameters.map((parameter) => parameter.name));
  for (const name of Object.keys(given)) {
    if (!known.has(name)) {
      problems.push({ field: `parameters.${name}`, reason: known.size === 0 ? "this template has no parameters" : `unknown parameter; this template has: ${[...known].join(", ")}` });
    }
  }
  for (const parameter of parameters) {
    const field = `parameters.${parameter.name}`;
    const previous = options.previous?.[parameter.name];
    const hasGiven = Object.hasOwn(given, parameter.name);
    if (hasGiven && previous !== undefined && !parameter.mutable && given[parameter.name] !== previous) {
      problems.push({ field, reason: `is immutable: it was set to ${JSON.stringify(previous)} when the workspace was created` });
      continue;
    }
    let value: string | undefined = hasGiven ? given[parameter.name] : parameter.ephemeral ? undefined : previous;
    value ??= parameter.default ?? undefined;
    if (value === undefined) {
      if (parameter.required) {
        problems.push({ field, reason: "is required (it has no default)" });
        continue;
      }
      value = "";
    }
    const problem = checkValue(parameter, value, previous);
    if (problem) problems.push({ field, reason: problem });
    else values[parameter.name] = value;
  }
  return { values, problems };
}

/** Why `value` is not acceptable for `parameter`, or null. */
export function checkValue(parameter: TemplateParameter, value: string, previous?: string): string | null {
  const typeProblem = typeError(parameter.type, value);
  if (parameter.options.length > 0) {
    const allowed = new Set(parameter.options.map((option) => option.value));
    if (parameter.type === "list(string)") {
      if (typeProblem) return typeProblem;
      const missing = (JSON.parse(value) as string[]).filter((item) => !allowed.has(item));
      if (missing.length > 0) return `${JSON.stringify(missing.join(", "))} is not among the options (${[...allowed].join(", ")})`;
    } else if (!allowed.has(value)) {
      return `must be one of the options: ${[...allowed].map((option) => JSON.stringify(option)).join(", ")}`;
    }
  }
  if (typeProblem) return typeProblem;
  const validation = parameter.validation;
  if (!validation) return null;
  const rendered = (fallback: string) => (validation.error
    ? validation.error.replaceAll("{min}", String(validation.min ?? 0)).replaceAll("{max}", String(validation.max ?? 0)).replaceAll("{value}", value)
    : fallback);
  if (parameter.type === "string" && validation.regex) {
    let pattern: RegExp;
    try {
      pattern = new RegExp(validation.regex);
    } catch {
      return `the template's validation regex ${JSON.stringify(validation.regex)} is not valid`;
    }
    // Go's regexp.MatchString: a match anywhere unless the pattern anchors itself.
    if (!pattern.test(value)) return `${validation.error || "does not match the validation"} (value ${JSON.stringify(value)} does not match ${JSON.stringify(validation.regex)})`;
  }
  if (parameter.type === "number") {
    const number = Number(value);
    if (validation.min !== null && number < validation.min) return rendered(`${number} is less than the minimum ${validation.min}`);
    if (validation.max !== null && number > validation.max) return rendered(`${number} is more than the maximum ${validation.max}`);
    if (validation.monotonic && previous !== undefined && /^-?\d+$/.test(previous)) {
      const before = Number(previous);
      if (validation.monotonic === "increasing" && number < before) return `must be equal to or greater than the previous value ${before}`;
      if (validation.monotonic === "decreasing" && number > before) return `must be equal to or lower than the previous value ${before}`;
    }
  }
  return null;
}

function typeError(type: TemplateParameter["type"], value: string): string | null {
  switch (type) {
    case "number":
      // The provider parses with strconv.Atoi: integers only.
      return /^[+-]?\d+$/.test(value) ? null : `${JSON.stringify(value)} is not a whole number`;
    case "bool":
      return value === "true" || value === "false" ? null : `must be "true" or "false", not ${JSON.stringify(value)}`;
    case "list(string)": {
      try {
        const parsed: unknown = JSON.parse(value);
        if (Array.isArray(parsed) && parsed.every((item) => typeof item === "string")) return null;
      } catch {
        // fall through
      }
      return `must be a JSON list of strings, e.g. ["a","b"], not ${JSON.stringify(value)}`;
    }
    case "string":
      return null;
  }
}
