import { lazy, Suspense, useEffect } from "react";
import { Navigate, NavLink, Route, Routes, useLocation } from "react-router";
import { isAdmin, useMe, useSignOut } from "./auth/session.ts";
import { SignIn } from "./auth/sign-in.tsx";
import { ChatsPage } from "./chats/chats-page.tsx";
import { ErrorNote, Loading } from "./ui/ui.tsx";

// The chat page is what most people open; everything else loads when first visited.
const WorkspacesPage = lazy(() => import("./workspaces/workspaces-page.tsx"));
const NewWorkspacePage = lazy(() => import("./workspaces/new-workspace-page.tsx"));
const WorkspacePage = lazy(() => import("./workspaces/workspace-page.tsx"));
const TerminalPage = lazy(() => import("./workspaces/terminal-page.tsx"));
const AdminPage = lazy(() => import("./admin/admin-page.tsx"));

export function App() {
  const me = useMe();
  if (me.isPending) return <div className="splash" role="status">Loading…</div>;
  if (me.isError) return <div className="splash"><ErrorNote error={me.error} title="Cannot reach the server" /></div>;
  if (!me.data) return <SignIn />;
  const admin = isAdmin(me.data);
  return (
    <div className="shell">
      <a className="skip-link" href="#main">Skip to content</a>
      <TopBar admin={admin} username={me.data.username} role={me.data.role} />
      <Suspense fallback={<main className="page" id="main"><Loading /></main>}>
        <Routes>
          <Route path="/" element={<Navigate to="/chats" replace />} />
          <Route path="/chats" element={<ChatsPage />} />
          <Route path="/chats/:chatId" element={<ChatsPage />} />
          <Route path="/workspaces" element={<WorkspacesPage />} />
          <Route path="/workspaces/new" element={<NewWorkspacePage />} />
          <Route path="/workspaces/:workspace" element={<WorkspacePage />} />
          <Route path="/workspaces/:workspace/terminal" element={<TerminalPage />} />
          <Route path="/admin/*" element={admin ? <AdminPage /> : <Forbidden />} />
          <Route path="/login" element={<Navigate to="/chats" replace />} />
          <Route path="/setup" element={<Navigate to="/chats" replace />} />
          <Route path="*" element={<NotFound />} />
        </Routes>
      </Suspense>
    </div>
  );
}

function TopBar({ admin, username, role }: { admin: boolean; username: string; role: string }) {
  const signOut = useSignOut();
  const location = useLocation();
  useEffect(() => {
    const section = location.pathname.split("/")[1] || "chats";
    document.title = `${section[0]!.toUpperCase()}${section.slice(1)} · Kiln`;
  }, [location.pathname]);
  return (
    <header className="topbar">
      <NavLink to="/chats" className="brand" aria-label="Kiln home"><span className="brand-mark" aria-hidden="true" /><span className="brand-name">Kiln</span></NavLink>
      <nav aria-label="Main">
        <NavLink to="/chats">Chats</NavLink>
        <NavLink to="/workspaces">Workspaces</NavLink>
        {admin && <NavLink to="/admin">Admin</NavLink>}
      </nav>
      <div className="user">
        <span className="muted" title={role}>{username}</span>
        <button type="button" className="link" onClick={() => void signOut()}>Sign out</button>
      </div>
    </header>
  );
}

function Forbidden() {
  return (
    <main className="page" id="main">
      <h1>Not allowed</h1>
      <p role="alert">Admin pages are for admins. Ask an owner or admin of this deployment if you need access.</p>
    </main>
  );
}

function NotFound() {
  return (
    <main className="page" id="main">
      <h1>Not found</h1>
      <p>Nothing lives at this address. <NavLink to="/chats">Go to your chats</NavLink>.</p>
    </main>
  );
}
