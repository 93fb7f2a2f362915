import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router";
import { api, unwrap, type User } from "../api/client.ts";

/** The signed-in user, or null when the session cookie is missing or no longer valid. */
export function useMe() {
  return useQuery({
    queryKey: ["me"],
    // auth.session answers null instead of a 401, so a signed-out visit logs no failed request.
    queryFn: async (): Promise<User | null> => unwrap(await api.GET("/api/v1/auth/session")).user,
    staleTime: 60_000,
  });
}

export function isAdmin(user: User | null | undefined): boolean {
  return user?.role === "owner" || user?.role === "admin";
}

export function useSignOut() {
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  return async () => {
    await api.POST("/api/v1/auth/logout").catch(() => undefined);
    // The next person to sign in starts at the front page, not at the previous user's last page.
    await navigate("/");
    queryClient.setQueryData(["me"], null);
    // Nothing of the previous user's data stays in memory for the next one.
    queryClient.removeQueries({ predicate: (query) => query.queryKey[0] !== "me" });
  };
}
