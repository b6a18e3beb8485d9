CREATE TABLE IF NOT EXISTS "erp"."orders" ("event_id" TEXT NOT NULL, "order_id" TEXT, "total" NUMERIC(12,2), "placed_at" TIMESTAMPTZ, "doc" JSONB, PRIMARY KEY ("event_id"));
INSERT INTO "erp"."orders" AS t ("event_id", "order_id", "total", "placed_at", "doc") VALUES ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10) ON CONFLICT ("event_id") DO NOTHING;
SELECT * FROM "erp"."orders" WHERE 1 = 0
