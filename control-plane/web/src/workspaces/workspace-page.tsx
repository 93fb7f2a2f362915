import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { errorMessage } from "../api/client.ts";
import { ErrorNote, formatTime, Loading, PageHeader, StatusBadge } from "../ui/ui.tsx";
import { BuildLogs } from "./build-logs.tsx";
import { isBusy, useTransition, useWorkspace } from "./workspace-api.ts";

export default function WorkspacePage() {
  const { workspace: reference = "" } = useParams();
  const workspace = useWorkspace(reference);
  const transition = useTransition();
  const navigate = useNavigate();
  const [confirmDelete, setConfirmDelete] = useState(false);
  if (workspace.isPending) return <main className="page" id="main"><Loading what="Loading the workspace" /></main>;
  if (workspace.isError) return <main className="page" id="main"><ErrorNote error={workspace.error} title="Cannot open this workspace" /></main>;
  const data = workspace.data;
  const act = (name: "start" | "stop" | "delete") => transition.mutate({ workspace: data.id, transition: name }, {
    onSuccess: () => {
      if (name === "delete") void navigate("/workspaces");
    },
  });
  const ready = data.status === "running" && data.agent?.connected && data.agent.lifecycle_state === "ready";
  return (
    <main className="page" id="main">
      <PageHeader title={data.name}>
        {ready && <Link className="button primary" to={`/workspaces/${data.id}/terminal`}>Terminal</Link>}
        {(data.status === "stopped" || data.status === "failed" || data.status === "canceled") && <button type="button" onClick={() => act("start")} disabled={transition.isPending}>Start</button>}
        {data.status === "running" && <button type="button" onClick={() => act("stop")} disabled={transition.isPending}>Stop</button>}
        {!isBusy(data) && data.status !== "deleted" && (confirmDelete ? (
          <span className="confirm" role="group" aria-label="Confirm delete">
            <button type="button" className="danger" onClick={() => act("delete")} disabled={transition.isPending}>Delete for good</button>
            <button type="button" onClick={() => setConfirmDelete(false)}>Keep</button>
          </span>
        ) : <button type="button" className="danger" onClick={() => setConfirmDelete(true)}>Delete</button>)}
      </PageHeader>
      {transition.isError && <p className="error" role="alert">{errorMessage(transition.error)}</p>}
      <dl className="facts">
        <dt>Status</dt><dd><StatusBadge status={data.status} /></dd>
        <dt>Template</dt><dd>{data.template_name}</dd>
        <dt>Owner</dt><dd>{data.owner_name}</dd>
        <dt>Agent</dt>
        <dd>{data.agent ? <><StatusBadge status={data.agent.connected ? data.agent.lifecycle_state : "off"} label={data.agent.connected ? data.agent.lifecycle_state : "disconnected"} />{data.agent.directory && <code className="small"> {data.agent.directory}</code>}</> : "—"}</dd>
        <dt>Created</dt><dd><time dateTime={data.created_at}>{formatTime(data.created_at)}</time></dd>
        {data.latest_build?.error && <><dt>Last error</dt><dd className="error">{data.latest_build.error}</dd></>}
      </dl>
      {data.latest_build && <BuildLogs key={data.latest_build.id} workspaceId={data.id} buildNumber={data.latest_build.build_number} />}
    </main>
  );
}
