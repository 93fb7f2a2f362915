import { describe, expect, it } from "vitest";
import { checkParameter, initialValues, templateParameters, type TemplateParameter } from "./parameters.ts";

const cpu: TemplateParameter = { name: "cpu", type: "number", default: "2", validation: { min: 1, max: 8, error: "between {min} and {max} cores" }, required: false };
const region: TemplateParameter = { name: "region", type: "string", default: null, options: [{ name: "EU", value: "eu" }, { name: "US", value: "us" }], required: true };
const repo: TemplateParameter = { name: "repo", type: "string", default: "", validation: { min: null, max: null, regex: "^https://", error: "" }, required: false };

describe("template parameter form checks", () => {
  it("reads parameters from a template version in their declared order", () => {
    expect(templateParameters({ parameters: [{ name: "b", order: 2 }, { name: "a", order: 1 }] }).map((parameter) => parameter.name)).toEqual(["a", "b"]);
    expect(templateParameters({ name: "local" })).toEqual([]);
  });

  it("checks numbers against their range with the template's own message", () => {
    expect(checkParameter(cpu, "4")).toBeNull();
    expect(checkParameter(cpu, "12")).toBe("between 1 and 8 cores");
    expect(checkParameter(cpu, "many")).toBe("must be a number");
  });

  it("requires parameters without a default and restricts options", () => {
    expect(checkParameter(region, "")).toBe("required");
    expect(checkParameter(region, "mars")).toBe("must be one of: eu, us");
    expect(checkParameter(region, "eu")).toBeNull();
  });

  it("checks string patterns and list syntax", () => {
    expect(checkParameter(repo, "git@host:x")).toBe("must match ^https://");
    expect(checkParameter(repo, "")).toBeNull();
    expect(checkParameter({ name: "tags", type: "list(string)", default: "[]" }, "[1]")).toBe("must be a JSON list of strings");
    expect(initialValues([cpu, region, { name: "gpu", type: "bool" }])).toEqual({ cpu: "2", region: "", gpu: "false" });
  });
});
