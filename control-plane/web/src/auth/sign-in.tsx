import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, errorMessage, fieldErrors, unwrap } from "../api/client.ts";
import { Field } from "../ui/ui.tsx";

/** First-user setup on a new deployment, otherwise login. Both set the HttpOnly session cookie. */
export function SignIn() {
  const buildinfo = useQuery({ queryKey: ["buildinfo"], queryFn: async () => unwrap(await api.GET("/api/v1/buildinfo")) });
  if (buildinfo.isPending) return <div className="splash" role="status">Loading…</div>;
  if (buildinfo.isError) return <div className="splash" role="alert">Cannot reach the server: {errorMessage(buildinfo.error)}</div>;
  return (
    <main className="auth" id="main">
      <div className="auth-card">
        <div className="brand auth-brand" aria-hidden="true"><span className="brand-mark" />Kiln</div>
        {buildinfo.data.has_users ? <Login /> : <Setup />}
        <p className="muted small">Kiln {buildinfo.data.version}</p>
      </div>
    </main>
  );
}

function Login() {
  const queryClient = useQueryClient();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      const session = unwrap(await api.POST("/api/v1/auth/login", {
        params: { query: { cookie: "true" } },
        body: { login: String(form.get("login")), password: String(form.get("password")) },
      }));
      queryClient.setQueryData(["me"], session.user);
    } catch (failure) {
      setError(errorMessage(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} aria-labelledby="login-title">
      <h1 id="login-title">Sign in</h1>
      <Field label="Email or username" name="login" autoComplete="username" required autoFocus />
      <Field label="Password" name="password" type="password" autoComplete="current-password" required />
      {error && <p className="error" role="alert">{error}</p>}
      <button className="primary" type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
    </form>
  );
}

function Setup() {
  const queryClient = useQueryClient();
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    if (form.get("password") !== form.get("confirm")) {
      setErrors({ confirm: "the passwords differ" });
      return;
    }
    setBusy(true);
    setErrors({});
    setError(null);
    try {
      const session = unwrap(await api.POST("/api/v1/users/first", {
        params: { query: { cookie: "true" } },
        body: { email: String(form.get("email")), username: String(form.get("username")), password: String(form.get("password")) },
      }));
      queryClient.setQueryData(["me"], session.user);
      queryClient.setQueryData(["buildinfo"], (current: object | undefined) => ({ ...current, has_users: true }));
    } catch (failure) {
      setErrors(fieldErrors(failure));
      setError(errorMessage(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} aria-labelledby="setup-title">
      <h1 id="setup-title">Set up Kiln</h1>
      <p className="muted">This deployment has no users yet. The first account owns it.</p>
      <Field label="Email" name="email" type="email" autoComplete="email" required autoFocus error={errors.email} />
      <Field label="Username" name="username" autoComplete="username" required pattern="[a-z0-9](?:[a-z0-9_\-]{0,30}[a-z0-9])?" hint="lowercase letters, digits, '-' or '_'" error={errors.username} />
      <Field label="Password" name="password" type="password" autoComplete="new-password" required minLength={8} hint="at least 8 characters" error={errors.password} />
      <Field label="Confirm password" name="confirm" type="password" autoComplete="new-password" required minLength={8} error={errors.confirm} />
      {error && !Object.keys(errors).length && <p className="error" role="alert">{error}</p>}
      <button className="primary" type="submit" disabled={busy}>{busy ? "Creating…" : "Create owner account"}</button>
    </form>
  );
}
