CREATE TABLE "watch_events" (
	"tx" "xid8" DEFAULT pg_current_xact_id() NOT NULL,
	"seq" bigint GENERATED ALWAYS AS IDENTITY (sequence name "watch_events_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL,
	"kind" text NOT NULL,
	"project_id" uuid NOT NULL,
	"secret_id" uuid NOT NULL,
	"path" text NOT NULL,
	"name" text NOT NULL,
	"previous_path" text,
	"previous_name" text,
	"revision" integer DEFAULT 0 NOT NULL,
	"version_status" text,
	"single_access" boolean DEFAULT false NOT NULL,
	CONSTRAINT "watch_events_tx_seq_pk" PRIMARY KEY("tx","seq")
);
--> statement-breakpoint
CREATE TABLE "watch_state" (
	"id" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"epoch" uuid DEFAULT gen_random_uuid() NOT NULL,
	"pruned_tx" "xid8" DEFAULT '0'::xid8 NOT NULL,
	"pruned_seq" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE INDEX "watch_events_occurred_idx" ON "watch_events" USING btree ("occurred_at");