/** Daemon variables that carry credentials; a command run for an agent must not see them. */
const CREDENTIAL_VARIABLE = /^KILN_.*TOKEN/;

/** Settings that keep tools from waiting on a terminal nobody is watching. */
const NON_INTERACTIVE: Record<string, string> = {
  GIT_TERMINAL_PROMPT: "0",
  PAGER: "cat",
  GIT_PAGER: "cat",
  TERM: "dumb",
  KILN_AGENT: "1",
};

/** The child's environment: the daemon's minus credentials, non-interactive settings, then the request's own. */
export function childEnvironment(base: NodeJS.ProcessEnv, requested: Record<string, string> = {}): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
    if (value !== undefined && !CREDENTIAL_VARIABLE.test(name)) environment[name] = value;
  }
  return Object.assign(environment, NON_INTERACTIVE, requested);
}
