import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { kiln, kilnBin, killDaemonsOf, startKilnServer, temporaryDirectory, type KilnServerProcess } from "../testing/kiln-process.ts";
import { localTemplateDirectory, terraformToolchain } from "../testing/terraform.ts";

const toolchain = terraformToolchain();

/** Scale-out: a server that runs no builds, and a standalone `kiln provisioner` that runs them from the shared job table. */
describe.skipIf(!toolchain)("kiln provisioner (standalone) with a server that provisions nothing", () => {
  let database: TestDatabase;
  let server: KilnServerProcess;
  let provisioner: ChildProcess;
  let provisionerOutput = "";
  const config = temporaryDirectory("kiln-prov-cli-");
  const workspaces = temporaryDirectory("kiln-prov-ws-");
  const provisionerData = temporaryDirectory("kiln-prov-data-");
  const cli = (args: string[]) => kiln(args, { configDir: config.path, timeoutMs: 120_000 });

  beforeAll(async () => {
    database = await createTestDatabase();
    if (!database.url) throw new Error("this test needs Postgres");
    server = await startKilnServer({ postgresUrl: database.url, env: { KILN_PROVISIONER_CONCURRENCY: "0" } });
    provisioner = spawn(process.execPath, [kilnBin, "provisioner", "--postgres-url", database.url, "--access-url", server.url, "--data-dir", provisionerData.path], {
      stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, KILN_LOG_LEVEL: "info" },
    });
    provisioner.stdout!.on("data", (chunk) => (provisionerOutput += chunk));
    provisioner.stderr!.on("data", (chunk) => (provisionerOutput += chunk));
    expect((await cli(["login", server.url, "--first-user-email", "me@example.com", "--first-user-username", "me", "--first-user-password", "password-123"])).code).toBe(0);
  });

  afterAll(async () => {
    provisioner?.kill("SIGTERM");
    await server?.stop();
    if (server) killDaemonsOf(server.url);
    await database?.close();
    for (const directory of [config, workspaces, provisionerData]) directory.remove();
  });

  it("imports, builds and deletes through the provisioner process; the server cuts the deleted agent's tunnel", async () => {
    const push = await cli(["templates", "push", localTemplateDirectory, "--name", "local-tf", "--variable", `workspaces_directory=${workspaces.path}`]);
    expect(push.code, `${push.stderr}\n${provisionerOutput}`).toBe(0);
    expect(provisionerOutput).toContain("kiln provisioner ready");
    const create = await cli(["create", "dev", "-t", "local-tf"]);
    expect(create.code, create.stderr).toBe(0);
    expect(await cli(["exec", "dev", "--", "cat", "greeting.txt"])).toMatchObject({ code: 0, stdout: "hello, me\n" });
    expect(provisionerOutput).toMatch(/"jobType":"workspace_build"[^\n]*"job started"/);
    const removed = await cli(["delete", "dev"]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(JSON.parse((await cli(["list", "-o", "json"])).stdout)).toEqual([]);
    expect(server.output()).not.toContain('"jobType"');
  }, 240_000);
});
