// Regenerates the committed OpenAPI document and the typed client's schema from the route definitions.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { openApiDocument } from "../src/api/openapi.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const documentPath = path.join(root, "openapi.json");
writeFileSync(documentPath, `${JSON.stringify(openApiDocument(), null, 2)}\n`);
execFileSync(process.execPath, [path.join(root, "../node_modules/openapi-typescript/bin/cli.js"), documentPath, "-o", path.join(root, "src/client/schema.ts")], { stdio: "inherit" });
console.log(`wrote ${documentPath} and src/client/schema.ts`);
