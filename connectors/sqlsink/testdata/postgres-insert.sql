CREATE TABLE IF NOT EXISTS "erp"."orders" ("event_id" TEXT NOT NULL, "order_id" TEXT, "total" NUMERIC(12,2), "placed_at" TIMESTAMPTZ, "doc" JSONB, PRIMARY KEY ("event_id"));
INSERT INTO "erp"."orders" AS t ("event_id", "order_id", "total", "placed_at", "doc") SELECT c1, c2, c3::numeric, c4::timestamptz, c5::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(c1, c2, c3, c4, c5) ON CONFLICT ("event_id") DO NOTHING;
SELECT * FROM "erp"."orders" WHERE 1 = 0
