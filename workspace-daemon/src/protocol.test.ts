import { describe, expect, test } from "vitest";
import { z } from "zod";
import * as Protocol from "./protocol.ts";

// The control plane's client is generated from these; a change to the wire format must show up in review.
const requestSchemas = {
  ReadFileRequest: Protocol.ReadFileRequest,
  RawWriteRequest: Protocol.RawWriteRequest,
  WriteFileRequest: Protocol.WriteFileRequest,
  EditFilesRequest: Protocol.EditFilesRequest,
  ListFilesRequest: Protocol.ListFilesRequest,
  StartProcessRequest: Protocol.StartProcessRequest,
  ProcessOutputRequest: Protocol.ProcessOutputRequest,
  SignalProcessRequest: Protocol.SignalProcessRequest,
  CreatePtyRequest: Protocol.CreatePtyRequest,
  ResizePtyRequest: Protocol.ResizePtyRequest,
  TcpStreamRequest: Protocol.TcpStreamRequest,
};
const responseSchemas = {
  ErrorBody: Protocol.ErrorBody,
  InfoResponse: Protocol.InfoResponse,
  ReadFileResponse: Protocol.ReadFileResponse,
  WriteFileResponse: Protocol.WriteFileResponse,
  EditFilesResponse: Protocol.EditFilesResponse,
  ListFilesResponse: Protocol.ListFilesResponse,
  ProcessResult: Protocol.ProcessResult,
  ListProcessesResponse: Protocol.ListProcessesResponse,
  ProcessStreamEvent: Protocol.ProcessStreamEvent,
  PtySessionInfo: Protocol.PtySessionInfo,
  ListPtyResponse: Protocol.ListPtyResponse,
};

describe("protocol JSON schemas", () => {
  for (const [name, schema] of Object.entries(requestSchemas)) {
    test(`${name} (input)`, () => {
      expect(z.toJSONSchema(schema, { io: "input" })).toMatchSnapshot();
    });
  }
  for (const [name, schema] of Object.entries(responseSchemas)) {
    test(`${name} (output)`, () => {
      expect(z.toJSONSchema(schema, { io: "output" })).toMatchSnapshot();
    });
  }
});
