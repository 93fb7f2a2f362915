export { ProcessManager, type ProcessManagerOptions, type StartMode, type StartedProcess } from "./process-manager.ts";
export { ManagedProcess, type ProcessEvent } from "./managed-process.ts";
export { OutputBuffer, type OutputSnapshot } from "./output-buffer.ts";
export { childEnvironment } from "./environment.ts";
export { processEventStream } from "./event-stream.ts";
