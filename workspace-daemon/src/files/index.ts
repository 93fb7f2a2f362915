export { readFile } from "./read.ts";
export { openRawFile, openRawFileDescriptor, rawFileSize, sendRawFile, writeRawFile, type ChunkSink, type RawFile, type RawFileDescriptor } from "./raw.ts";
export { writeFile } from "./write.ts";
export { editFiles } from "./edit.ts";
export { listDirectory } from "./list.ts";
export { resolvePath } from "./paths.ts";
