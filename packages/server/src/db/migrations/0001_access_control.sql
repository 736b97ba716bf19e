CREATE TABLE "audit_events" (
	"id" uuid PRIMARY KEY NOT NULL,
	"time" timestamp with time zone DEFAULT now() NOT NULL,
	"token_id" uuid,
	"project_id" uuid,
	"method" text NOT NULL,
	"secret_id" uuid,
	"secret_path" text,
	"secret_name" text,
	"revision" integer,
	"outcome" text NOT NULL,
	"request_id" text NOT NULL,
	"peer" text
);
--> statement-breakpoint
CREATE TABLE "projects" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tokens" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"prefix" text NOT NULL,
	"hash" "bytea" NOT NULL,
	"grants" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "audit_events_time_idx" ON "audit_events" USING btree ("time");--> statement-breakpoint
CREATE INDEX "audit_events_project_time_idx" ON "audit_events" USING btree ("project_id","time");--> statement-breakpoint
CREATE INDEX "audit_events_secret_time_idx" ON "audit_events" USING btree ("secret_id","time");--> statement-breakpoint
CREATE INDEX "audit_events_token_time_idx" ON "audit_events" USING btree ("token_id","time");--> statement-breakpoint
CREATE UNIQUE INDEX "tokens_hash_key" ON "tokens" USING btree ("hash");