import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { Link, NavLink, useNavigate, useParams } from "react-router";
import { api, errorMessage, unwrap, type Chat } from "../api/client.ts";
import { readEvents } from "../api/sse.ts";
import { Empty, ErrorNote, formatTime, Loading, StatusBadge } from "../ui/ui.tsx";
import { Conversation } from "./conversation.tsx";

export function ChatsPage() {
  const { chatId } = useParams();
  useChatStatuses();
  return (
    <div className={`chats-layout${chatId ? " has-chat" : ""}`}>
      <aside className="chat-sidebar" aria-label="Your chats">
        <div className="sidebar-head">
          <h2>Chats</h2>
          <Link to="/chats" className="button small">New chat</Link>
        </div>
        <ChatList activeId={chatId} />
      </aside>
      <main className="chat-main" id="main">
        {chatId ? <Conversation key={chatId} chatId={chatId} /> : <NewChat />}
      </main>
    </div>
  );
}

export function useChats() {
  return useQuery({ queryKey: ["chats"], queryFn: async () => unwrap(await api.GET("/api/v1/chats", { params: { query: {} } })).chats });
}

/** Keeps the status of every chat in the list current from the per-user status stream. */
function useChatStatuses() {
  const queryClient = useQueryClient();
  useEffect(() => {
    const controller = new AbortController();
    const run = async () => {
      while (!controller.signal.aborted) {
        try {
          const result = await api.GET("/api/v1/chats-stream", { parseAs: "stream", signal: controller.signal });
          if (result.response.status === 401 || !result.data) return;
          for await (const message of readEvents(result.data)) {
            const event = JSON.parse(message.data) as { chat_id: string; status: Chat["status"]; error: string | null };
            const chats = queryClient.getQueryData<Chat[]>(["chats"]);
            if (!chats?.some((chat) => chat.id === event.chat_id)) {
              void queryClient.invalidateQueries({ queryKey: ["chats"] });
              continue;
            }
            queryClient.setQueryData<Chat[]>(["chats"], chats.map((chat) => chat.id === event.chat_id ? { ...chat, status: event.status, last_error: event.error } : chat));
          }
        } catch {
          // dropped: wait a moment and reconnect
        }
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    };
    void run();
    return () => controller.abort();
  }, [queryClient]);
}

function ChatList({ activeId }: { activeId?: string }) {
  const chats = useChats();
  if (chats.isPending) return <Loading what="Loading chats" />;
  if (chats.isError) return <ErrorNote error={chats.error} />;
  const topLevel = chats.data.filter((chat) => !chat.parent_chat_id);
  if (topLevel.length === 0) return <Empty>No chats yet.</Empty>;
  return (
    <ul className="chat-list">
      {topLevel.map((chat) => (
        <li key={chat.id}>
          <NavLink to={`/chats/${chat.id}`} className={chat.id === activeId ? "active" : undefined} aria-current={chat.id === activeId ? "page" : undefined}>
            <span className="chat-title">{chat.title || "Untitled"}</span>
            <span className="chat-meta">
              <StatusBadge status={chat.status} />
              <time dateTime={chat.updated_at}>{formatTime(chat.updated_at)}</time>
            </span>
          </NavLink>
        </li>
      ))}
    </ul>
  );
}

function NewChat() {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const models = useQuery({ queryKey: ["models"], queryFn: async () => unwrap(await api.GET("/api/v1/models")).models });
  const workspaces = useQuery({ queryKey: ["workspaces"], queryFn: async () => unwrap(await api.GET("/api/v1/workspaces", { params: { query: {} } })).workspaces });
  const [prompt, setPrompt] = useState("");
  const form = useRef<HTMLFormElement>(null);
  const create = useMutation({
    mutationFn: async (input: { prompt: string; model?: string; workspace?: string }) => unwrap(await api.POST("/api/v1/chats", { body: input })),
    onSuccess: (chat) => {
      queryClient.setQueryData<Chat[]>(["chats"], (chats) => [chat, ...(chats ?? []).filter((other) => other.id !== chat.id)]);
      void navigate(`/chats/${chat.id}`);
    },
  });
  const submit = (event?: FormEvent<HTMLFormElement>) => {
    event?.preventDefault();
    if (!prompt.trim() || !form.current || create.isPending) return;
    const data = new FormData(form.current);
    create.mutate({ prompt, model: String(data.get("model") || "") || undefined, workspace: String(data.get("workspace") || "") || undefined });
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  };
  const noModels = models.isSuccess && models.data.length === 0;
  return (
    <form ref={form} className="new-chat" onSubmit={submit} aria-labelledby="new-chat-title">
      <h1 id="new-chat-title">New chat</h1>
      {noModels && <p className="error-box" role="alert">No models are enabled. An admin can add a provider and a model under Admin.</p>}
      <div className="new-chat-options">
        <div className="field">
          <label htmlFor="chat-model">Model</label>
          <select id="chat-model" name="model" disabled={!models.isSuccess || noModels}>
            {models.data?.map((model) => <option key={model.id} value={model.id}>{model.display_name || model.model}{model.is_default ? " (default)" : ""}</option>)}
          </select>
        </div>
        <div className="field">
          <label htmlFor="chat-workspace">Workspace</label>
          <select id="chat-workspace" name="workspace" defaultValue="">
            <option value="">None (the agent can create one)</option>
            {workspaces.data?.filter((workspace) => workspace.status !== "deleted").map((workspace) => <option key={workspace.id} value={workspace.id}>{workspace.name} ({workspace.status})</option>)}
          </select>
        </div>
      </div>
      <div className="field">
        <label htmlFor="chat-prompt">What should the agent do?</label>
        <textarea id="chat-prompt" name="prompt" rows={5} value={prompt} onChange={(event) => setPrompt(event.target.value)} onKeyDown={onKeyDown} placeholder="Describe the task. Enter sends, Shift+Enter adds a line." autoFocus />
      </div>
      {create.isError && <p className="error" role="alert">{errorMessage(create.error)}</p>}
      <button className="primary" type="submit" disabled={create.isPending || !prompt.trim() || noModels}>{create.isPending ? "Starting…" : "Start chat"}</button>
    </form>
  );
}
