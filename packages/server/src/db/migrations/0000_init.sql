CREATE TABLE "secret_versions" (
	"secret_id" uuid NOT NULL,
	"revision" integer NOT NULL,
	"status" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"expires_at" timestamp with time zone,
	"expires_once_accessed" boolean,
	"ephemeral_action" text,
	"data_crc32" bigint NOT NULL,
	"key_id" text,
	"wrapped_key" "bytea",
	"ciphertext" "bytea",
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deletion_requested_at" timestamp with time zone,
	"deleted_at" timestamp with time zone,
	"consumed_at" timestamp with time zone,
	CONSTRAINT "secret_versions_secret_id_revision_pk" PRIMARY KEY("secret_id","revision")
);
--> statement-breakpoint
CREATE TABLE "secrets" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" uuid NOT NULL,
	"region" text NOT NULL,
	"name" text NOT NULL,
	"path" text NOT NULL,
	"type" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"protected" boolean DEFAULT false NOT NULL,
	"ephemeral_ttl_ms" bigint,
	"ephemeral_once" boolean,
	"ephemeral_action" text,
	"last_revision" integer DEFAULT 0 NOT NULL,
	"generation" bigint DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deletion_requested_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "secret_versions" ADD CONSTRAINT "secret_versions_secret_id_secrets_id_fk" FOREIGN KEY ("secret_id") REFERENCES "public"."secrets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "secret_versions_expiry_idx" ON "secret_versions" USING btree ("expires_at") WHERE "secret_versions"."status" = 'enabled' and "secret_versions"."expires_at" is not null;--> statement-breakpoint
CREATE INDEX "secret_versions_deletion_idx" ON "secret_versions" USING btree ("deletion_requested_at") WHERE "secret_versions"."status" = 'scheduled_for_deletion';--> statement-breakpoint
CREATE UNIQUE INDEX "secrets_live_name_key" ON "secrets" USING btree ("project_id","region","path","name") WHERE "secrets"."deletion_requested_at" is null;--> statement-breakpoint
CREATE INDEX "secrets_project_path_idx" ON "secrets" USING btree ("project_id","path");--> statement-breakpoint
CREATE INDEX "secrets_deletion_idx" ON "secrets" USING btree ("deletion_requested_at") WHERE "secrets"."deletion_requested_at" is not null;