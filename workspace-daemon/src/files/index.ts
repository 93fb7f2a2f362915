export { readFile } from "./read.ts";
export { openRawFile, writeRawFile, type RawFile } from "./raw.ts";
export { writeFile } from "./write.ts";
export { editFiles } from "./edit.ts";
export { listDirectory } from "./list.ts";
export { resolvePath } from "./paths.ts";
