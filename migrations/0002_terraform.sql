CREATE TABLE "workspace_agent_logs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"agent_id" uuid NOT NULL,
	"source" text NOT NULL,
	"level" text DEFAULT 'info' NOT NULL,
	"output" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "workspace_agent_metadata" (
	"agent_id" uuid NOT NULL,
	"key" text NOT NULL,
	"value" text DEFAULT '' NOT NULL,
	"error" text,
	"collected_at" timestamp with time zone NOT NULL,
	CONSTRAINT "workspace_agent_metadata_agent_id_key_pk" PRIMARY KEY("agent_id","key")
);
--> statement-breakpoint
CREATE TABLE "workspace_agent_script_runs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"agent_id" uuid NOT NULL,
	"script" text NOT NULL,
	"stage" text NOT NULL,
	"status" text NOT NULL,
	"exit_code" integer,
	"started_at" timestamp with time zone NOT NULL,
	"ended_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "template_versions" ADD COLUMN "message" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "template_versions" ADD COLUMN "job_id" uuid;--> statement-breakpoint
ALTER TABLE "template_versions" ADD COLUMN "archive" "bytea";--> statement-breakpoint
ALTER TABLE "template_versions" ADD COLUMN "archive_hash" text;--> statement-breakpoint
ALTER TABLE "template_versions" ADD COLUMN "variables" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "template_versions" ADD COLUMN "agents" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "template_versions" ADD COLUMN "resources" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "workspace_agents" ADD COLUMN "config" jsonb;--> statement-breakpoint
ALTER TABLE "workspace_agents" ADD COLUMN "started_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "workspace_agents" ADD COLUMN "ready_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "workspace_builds" ADD COLUMN "resources" jsonb;--> statement-breakpoint
ALTER TABLE "workspace_agent_logs" ADD CONSTRAINT "workspace_agent_logs_agent_id_workspace_agents_id_fk" FOREIGN KEY ("agent_id") REFERENCES "public"."workspace_agents"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workspace_agent_metadata" ADD CONSTRAINT "workspace_agent_metadata_agent_id_workspace_agents_id_fk" FOREIGN KEY ("agent_id") REFERENCES "public"."workspace_agents"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workspace_agent_script_runs" ADD CONSTRAINT "workspace_agent_script_runs_agent_id_workspace_agents_id_fk" FOREIGN KEY ("agent_id") REFERENCES "public"."workspace_agents"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "workspace_agent_logs_agent_idx" ON "workspace_agent_logs" USING btree ("agent_id","id");--> statement-breakpoint
CREATE INDEX "workspace_agent_script_runs_agent_idx" ON "workspace_agent_script_runs" USING btree ("agent_id","id");--> statement-breakpoint
ALTER TABLE "template_versions" ADD CONSTRAINT "template_versions_job_id_provisioner_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."provisioner_jobs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "template_versions_name_key" ON "template_versions" USING btree ("template_id",lower("name"));