import { Link } from "react-router";
import { errorMessage } from "../api/client.ts";
import { Empty, ErrorNote, formatTime, Loading, PageHeader, StatusBadge } from "../ui/ui.tsx";
import { isBusy, useTransition, useWorkspaces } from "./workspace-api.ts";

export default function WorkspacesPage() {
  const workspaces = useWorkspaces();
  const transition = useTransition();
  return (
    <main className="page" id="main">
      <PageHeader title="Workspaces">
        <Link to="/workspaces/new" className="button primary">New workspace</Link>
      </PageHeader>
      {transition.isError && <p className="error" role="alert">{errorMessage(transition.error)}</p>}
      {workspaces.isPending ? <Loading what="Loading workspaces" /> : workspaces.isError ? <ErrorNote error={workspaces.error} /> : workspaces.data.length === 0 ? (
        <Empty>No workspaces yet. <Link to="/workspaces/new">Create one</Link>, or let an agent create one for its chat.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr><th scope="col">Name</th><th scope="col">Template</th><th scope="col">Status</th><th scope="col">Agent</th><th scope="col">Updated</th><th scope="col"><span className="visually-hidden">Actions</span></th></tr>
            </thead>
            <tbody>
              {workspaces.data.map((workspace) => (
                <tr key={workspace.id} data-workspace={workspace.name}>
                  <td><Link to={`/workspaces/${workspace.id}`}>{workspace.name}</Link></td>
                  <td>{workspace.template_name}</td>
                  <td><StatusBadge status={workspace.status} /></td>
                  <td>{workspace.agent ? <StatusBadge status={workspace.agent.connected ? workspace.agent.lifecycle_state : "off"} label={workspace.agent.connected ? workspace.agent.lifecycle_state : "disconnected"} /> : <span className="muted">—</span>}</td>
                  <td><time dateTime={workspace.updated_at}>{formatTime(workspace.updated_at)}</time></td>
                  <td className="actions">
                    {workspace.status === "stopped" || workspace.status === "failed" || workspace.status === "canceled" ? (
                      <button type="button" className="small" disabled={transition.isPending} onClick={() => transition.mutate({ workspace: workspace.id, transition: "start" })}>Start</button>
                    ) : workspace.status === "running" ? (
                      <button type="button" className="small" disabled={transition.isPending} onClick={() => transition.mutate({ workspace: workspace.id, transition: "stop" })}>Stop</button>
                    ) : isBusy(workspace) ? <span className="muted small">working…</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </main>
  );
}
