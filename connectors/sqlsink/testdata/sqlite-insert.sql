CREATE TABLE IF NOT EXISTS "erp"."orders" ("event_id" TEXT NOT NULL, "order_id" TEXT, "total" NUMERIC(12,2), "placed_at" TEXT, "doc" TEXT, PRIMARY KEY ("event_id"));
INSERT INTO "erp"."orders" ("event_id", "order_id", "total", "placed_at", "doc") VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?) ON CONFLICT ("event_id") DO NOTHING;
SELECT * FROM "erp"."orders" WHERE 1 = 0
