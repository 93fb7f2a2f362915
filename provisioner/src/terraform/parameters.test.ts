import { describe, expect, it } from "vitest";
import { TemplateParameter, resolveParameters } from "./parameters.ts";

const parameter = (fields: Record<string, unknown> & { name: string }) => TemplateParameter.parse({ required: fields.default === undefined || fields.default === null, ...fields });

describe("template parameters (the Coder provider's rules, applied before Terraform runs)", () => {
  const region = parameter({ name: "region", default: "eu", options: [{ name: "Europe", value: "eu" }, { name: "US", value: "us" }] });
  const cpus = parameter({ name: "cpus", type: "number", default: "2", validation: { min: 1, max: 8, monotonic: "increasing", regex: "", error: "" } });
  const repo = parameter({ name: "repo", validation: { min: null, max: null, monotonic: "", regex: "^https://", error: "must be an https URL" } });
  const debug = parameter({ name: "debug", type: "bool", default: "false", mutable: true });
  const tags = parameter({ name: "tags", type: "list(string)", default: "[]", options: [{ name: "a", value: "a" }, { name: "b", value: "b" }], mutable: true });

  it("fills defaults and keeps given values", () => {
    expect(resolveParameters([region, cpus, repo, debug], { repo: "https://example.com/x.git" })).toEqual({
      values: { region: "eu", cpus: "2", repo: "https://example.com/x.git", debug: "false" }, problems: [],
    });
  });

  it("names every bad field and why", () => {
    const { problems } = resolveParameters([region, cpus, repo, debug, tags], { region: "mars", cpus: "9", repo: "git@x", debug: "yes", tags: '["a","c"]', extra: "1" });
    expect(problems).toEqual([
      { field: "parameters.extra", reason: expect.stringContaining("unknown parameter") },
      { field: "parameters.region", reason: 'must be one of the options: "eu", "us"' },
      { field: "parameters.cpus", reason: "9 is more than the maximum 8" },
      { field: "parameters.repo", reason: expect.stringContaining("must be an https URL") },
      { field: "parameters.debug", reason: 'must be "true" or "false", not "yes"' },
      { field: "parameters.tags", reason: expect.stringContaining('"c" is not among the options') },
    ]);
  });

  it("requires parameters without a default and checks types", () => {
    expect(resolveParameters([repo], {}).problems).toEqual([{ field: "parameters.repo", reason: "is required (it has no default)" }]);
    expect(resolveParameters([cpus], { cpus: "2.5" }).problems[0]!.reason).toContain("not a whole number");
  });

  it("keeps previous values, refuses changing immutable ones, and enforces monotonic numbers", () => {
    const previous = { region: "us", cpus: "4", debug: "true" };
    expect(resolveParameters([region, cpus, debug], {}, { previous }).values).toEqual(previous);
    expect(resolveParameters([region, cpus, debug], { debug: "false" }, { previous }).values.debug).toBe("false");
    expect(resolveParameters([region], { region: "eu" }, { previous }).problems[0]!.reason).toContain("is immutable");
    const mutableCpus = TemplateParameter.parse({ ...cpus, mutable: true });
    expect(resolveParameters([mutableCpus], { cpus: "3" }, { previous }).problems[0]!.reason).toBe("must be equal to or greater than the previous value 4");
    expect(resolveParameters([mutableCpus], { cpus: "6" }, { previous }).problems).toEqual([]);
  });

  it("says when a template has no parameters at all", () => {
    expect(resolveParameters([], { anything: "x" }).problems).toEqual([{ field: "parameters.anything", reason: "this template has no parameters" }]);
  });
});
