ALTER TABLE "audit_events" ADD COLUMN "count" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "token_prefix" text;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "target_token_id" uuid;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "created_by" uuid;--> statement-breakpoint
ALTER TABLE "tokens" ADD CONSTRAINT "tokens_created_by_tokens_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "tokens_created_by_idx" ON "tokens" USING btree ("created_by") WHERE "tokens"."created_by" is not null;