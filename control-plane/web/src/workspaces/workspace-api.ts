import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Workspace } from "../api/client.ts";

const BUSY = new Set(["pending", "starting", "stopping", "deleting", "canceling"]);

export function isBusy(workspace: Workspace): boolean {
  return BUSY.has(workspace.status);
}

export function useWorkspaces() {
  return useQuery({
    queryKey: ["workspaces"],
    queryFn: async () => unwrap(await api.GET("/api/v1/workspaces", { params: { query: {} } })).workspaces,
    // While a build runs, poll so the status and agent settle without a reload.
    refetchInterval: (query) => (query.state.data?.some((workspace) => isBusy(workspace) || (workspace.status === "running" && !workspace.agent?.connected)) ? 1000 : false),
  });
}

export function useWorkspace(reference: string) {
  return useQuery({
    queryKey: ["workspace", reference],
    queryFn: async () => unwrap(await api.GET("/api/v1/workspaces/{workspace}", { params: { path: { workspace: reference } } })),
    refetchInterval: (query) => (query.state.data && (isBusy(query.state.data) || (query.state.data.status === "running" && query.state.data.agent?.lifecycle_state !== "ready")) ? 1000 : false),
  });
}

export function useTransition() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: async ({ workspace, transition }: { workspace: string; transition: "start" | "stop" | "delete" }) =>
      unwrap(await api.POST("/api/v1/workspaces/{workspace}/builds", { params: { path: { workspace } }, body: { transition } })),
    onSuccess: (workspace) => {
      queryClient.setQueryData(["workspace", workspace.id], workspace);
      void queryClient.invalidateQueries({ queryKey: ["workspaces"] });
      void queryClient.invalidateQueries({ queryKey: ["workspace"] });
    },
  });
}
