CREATE TABLE IF NOT EXISTS "erp"."orders" ("event_id" TEXT, "order_id" TEXT NOT NULL, "total" NUMERIC(12,2), "placed_at" TIMESTAMPTZ, "doc" JSONB, PRIMARY KEY ("order_id"));
INSERT INTO "erp"."orders" AS t ("event_id", "order_id", "total", "placed_at", "doc") VALUES ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10) ON CONFLICT ("order_id") DO UPDATE SET "event_id" = excluded."event_id", "total" = excluded."total", "placed_at" = excluded."placed_at", "doc" = excluded."doc" WHERE t."placed_at" IS NULL OR t."placed_at" <= excluded."placed_at";
SELECT * FROM "erp"."orders" WHERE 1 = 0;
DELETE FROM "erp"."orders" WHERE "order_id" = $1 AND ("placed_at" IS NULL OR "placed_at" <= $2)
