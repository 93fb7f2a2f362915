import { useEffect, useReducer, useRef, useState } from "react";
import { api, unwrap } from "../api/client.ts";
import { readEvents } from "../api/sse.ts";
import { chatReducer, emptyChatState, type ChatEvent, type ChatView, type MessageView, type QueuedView } from "./chat-state.ts";

export type Connection = "connecting" | "live" | "reconnecting";

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

async function loadHistory(chatId: string, signal: AbortSignal): Promise<MessageView[]> {
  const messages: MessageView[] = [];
  let after = 0;
  while (true) {
    const page = unwrap(await api.GET("/api/v1/chats/{chat}/messages", { params: { path: { chat: chatId }, query: { after, limit: 1000 } }, signal }));
    messages.push(...(page.messages as unknown as MessageView[]));
    if (!page.has_more || page.messages.length === 0) return messages;
    after = page.messages.at(-1)!.id;
  }
}

/**
 * A chat's conversation: its history over the API, then its event stream. The first connection asks
 * the server to replay everything it still buffers for the chat (Last-Event-ID 0), so a page reloaded
 * mid-turn shows the text streamed so far; later reconnects resume after the last event seen.
 */
export function useChat(chatId: string) {
  const [state, dispatch] = useReducer(chatReducer, emptyChatState);
  const [connection, setConnection] = useState<Connection>("connecting");
  const [loadError, setLoadError] = useState<unknown>(null);
  const lastEventId = useRef<number | null>(null);
  const lastMessageId = useRef(0);

  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;
    dispatch({ type: "reset" });
    lastEventId.current = null;
    lastMessageId.current = 0;
    setConnection("connecting");
    setLoadError(null);

    const run = async () => {
      const [detail, messages] = await Promise.all([
        api.GET("/api/v1/chats/{chat}", { params: { path: { chat: chatId } }, signal }).then(unwrap),
        loadHistory(chatId, signal),
      ]);
      dispatch({ type: "history", chat: detail.chat as ChatView, queue: detail.queue as unknown as QueuedView[], messages });
      lastMessageId.current = messages.at(-1)?.id ?? 0;
      let failures = 0;
      while (!signal.aborted) {
        try {
          const resumeFrom = lastEventId.current ?? 0;
          const result = await api.GET("/api/v1/chats/{chat}/stream", {
            params: { path: { chat: chatId }, query: { after_message: lastEventId.current === null ? 0 : lastMessageId.current } },
            headers: { "last-event-id": String(resumeFrom), accept: "text/event-stream" },
            parseAs: "stream",
            signal,
          });
          if (!result.response.ok || !result.data) {
            if (result.response.status === 404 || result.response.status === 401 || result.response.status === 403) {
              setLoadError(new Error(`the chat stream answered ${result.response.status}`));
              return;
            }
            throw new Error(`stream answered ${result.response.status}`);
          }
          setConnection("live");
          failures = 0;
          for await (const message of readEvents(result.data)) {
            const id = message.id === null || message.id === "" ? null : Number(message.id);
            if (message.event === "snapshot") {
              const snapshot = JSON.parse(message.data) as { chat: ChatView; queue: QueuedView[]; messages: MessageView[] };
              dispatch({ type: "snapshot", id, ...snapshot });
              for (const committed of snapshot.messages) lastMessageId.current = Math.max(lastMessageId.current, committed.id);
            } else {
              const event = JSON.parse(message.data) as ChatEvent;
              dispatch({ type: "event", id, event });
              if (event.type === "message.committed") lastMessageId.current = Math.max(lastMessageId.current, event.message.id);
            }
            if (id !== null && Number.isFinite(id)) lastEventId.current = Math.max(lastEventId.current ?? 0, id);
          }
        } catch {
          // The stream dropped or could not open: reconnect below, resuming after the last event.
          if (signal.aborted) return;
        }
        if (signal.aborted) return;
        setConnection("reconnecting");
        failures++;
        await sleep(Math.min(250 * 2 ** Math.min(failures - 1, 4), 4000), signal);
      }
    };
    run().catch((error: unknown) => {
      if (!signal.aborted) setLoadError(error);
    });
    return () => controller.abort();
  }, [chatId]);

  return { state, connection, loadError };
}
