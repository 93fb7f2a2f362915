ALTER TABLE "workspace_agents" ADD COLUMN "tailnet_address" text;--> statement-breakpoint
ALTER TABLE "workspace_agents" ADD COLUMN "tailnet_port" integer;--> statement-breakpoint
ALTER TABLE "workspace_agents" ADD COLUMN "tailnet_ssh_port" integer;--> statement-breakpoint
ALTER TABLE "workspace_agents" ADD COLUMN "tailnet_error" text;--> statement-breakpoint
ALTER TABLE "workspace_agents" ADD COLUMN "tailnet_joined_at" timestamp with time zone;