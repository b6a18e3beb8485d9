CREATE TABLE IF NOT EXISTS "erp"."orders" ("event_id" TEXT, "order_id" TEXT NOT NULL, "total" NUMERIC(12,2), "placed_at" TIMESTAMPTZ, "doc" JSONB, PRIMARY KEY ("order_id"));
INSERT INTO "erp"."orders" AS t ("event_id", "order_id", "total", "placed_at", "doc") SELECT c1, c2, c3::numeric, c4::timestamptz, c5::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(c1, c2, c3, c4, c5) ON CONFLICT ("order_id") DO UPDATE SET "event_id" = excluded."event_id", "total" = excluded."total", "placed_at" = excluded."placed_at", "doc" = excluded."doc" WHERE t."placed_at" IS NULL OR t."placed_at" <= excluded."placed_at";
SELECT * FROM "erp"."orders" WHERE 1 = 0;
DELETE FROM "erp"."orders" WHERE "order_id" = $1 AND ("placed_at" IS NULL OR "placed_at" <= $2)
