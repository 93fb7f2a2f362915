import pino from "pino";

export type Logger = pino.Logger;

/** Paths whose values must never reach a log line. */
export const redactPaths = [
  "token", "*.token", "password", "*.password", "apiKey", "*.apiKey", "api_key", "*.api_key",
  "secret", "*.secret", "authorization", "*.authorization", "headers.authorization", "req.headers.authorization",
  "req.headers.cookie", "agentToken", "*.agentToken", "env.KILN_AGENT_TOKEN", "secretKey", "*.secretKey", "postgresUrl", "*.postgresUrl",
];

export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino({ level: options.level ?? "info", redact: { paths: redactPaths, censor: "[redacted]" }, base: { service: "kiln" } }, options.destination);
}
