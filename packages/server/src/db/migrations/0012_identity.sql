CREATE TABLE "identity_bindings" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"issuer_id" uuid NOT NULL,
	"conditions" jsonb NOT NULL,
	"grants" jsonb NOT NULL,
	"token_ttl_ms" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" uuid,
	CONSTRAINT "identity_bindings_token_ttl_check" CHECK ("identity_bindings"."token_ttl_ms" between 60000 and 3600000)
);
--> statement-breakpoint
CREATE TABLE "trusted_issuers" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"issuer_url" text NOT NULL,
	"audiences" text[] NOT NULL,
	"key_source" text NOT NULL,
	"jwks_url" text,
	"static_jwks" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" uuid,
	CONSTRAINT "trusted_issuers_key_source_check" CHECK (("trusted_issuers"."key_source" = 'discovery' and "trusted_issuers"."jwks_url" is null and "trusted_issuers"."static_jwks" is null)
        or ("trusted_issuers"."key_source" = 'jwks_url' and "trusted_issuers"."jwks_url" is not null and "trusted_issuers"."static_jwks" is null)
        or ("trusted_issuers"."key_source" = 'static' and "trusted_issuers"."jwks_url" is null and "trusted_issuers"."static_jwks" is not null))
);
--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "issuer" text;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "subject" text;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "binding_id" uuid;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "reason" text;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "binding_id" uuid;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "issuer" text;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "subject" text;--> statement-breakpoint
ALTER TABLE "identity_bindings" ADD CONSTRAINT "identity_bindings_issuer_id_trusted_issuers_id_fk" FOREIGN KEY ("issuer_id") REFERENCES "public"."trusted_issuers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "identity_bindings_issuer_idx" ON "identity_bindings" USING btree ("issuer_id");--> statement-breakpoint
CREATE UNIQUE INDEX "trusted_issuers_name_key" ON "trusted_issuers" USING btree ("name");--> statement-breakpoint
CREATE UNIQUE INDEX "trusted_issuers_issuer_url_key" ON "trusted_issuers" USING btree ("issuer_url");--> statement-breakpoint
ALTER TABLE "tokens" ADD CONSTRAINT "tokens_binding_id_identity_bindings_id_fk" FOREIGN KEY ("binding_id") REFERENCES "public"."identity_bindings"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "tokens_binding_idx" ON "tokens" USING btree ("binding_id") WHERE "tokens"."binding_id" is not null;--> statement-breakpoint
CREATE INDEX "tokens_exchanged_expiry_idx" ON "tokens" USING btree ("expires_at") WHERE "tokens"."issuer" is not null;