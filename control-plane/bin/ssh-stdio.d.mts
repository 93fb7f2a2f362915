export function configDirectory(environment?: NodeJS.ProcessEnv): string;
export function describeClose(workspace: string, code: number, reason: string): string | null;
export function runSshStdio(args: string[]): Promise<number>;
